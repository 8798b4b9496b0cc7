//! Each route's metric handles, registered once and then reused: registering by name and labels
//! on every request built the label strings and looked the series up in the recorder's registry
//! each time. Handles are registered on first use, so they go to whichever recorder is
//! installed by then (the binary installs its recorder before it serves).

use std::sync::{Mutex, OnceLock};

use http::StatusCode;
use metrics::{Counter, Histogram};

/// The series of one route of one API.
#[derive(Debug, Default)]
pub struct RouteMetrics {
    upstream: OnceLock<Histogram>,
    /// `gateway_requests_total` by status; a route answers with a handful of statuses.
    requests: Mutex<Vec<(StatusCode, Counter)>>,
}

impl RouteMetrics {
    /// `gateway_upstream_duration_seconds{api, route}`.
    pub fn upstream(&self, api: &str, route: &str) -> &Histogram {
        self.upstream.get_or_init(|| {
            metrics::histogram!(
                "gateway_upstream_duration_seconds",
                "api" => api.to_string(),
                "route" => route.to_string(),
            )
        })
    }

    /// Counts one answer in `gateway_requests_total{api, route, status}`.
    pub fn count(&self, api: &str, route: &str, status: StatusCode) {
        let Ok(mut known) = self.requests.lock() else {
            return count(api, route, status);
        };
        if let Some((_, c)) = known.iter().find(|(s, _)| *s == status) {
            c.increment(1);
            return;
        }
        let c = requests(api, route, status);
        c.increment(1);
        known.push((status, c));
    }
}

/// Counts one answer that matched no route (no handle is kept for those).
pub fn count(api: &str, route: &str, status: StatusCode) {
    requests(api, route, status).increment(1);
}

fn requests(api: &str, route: &str, status: StatusCode) -> Counter {
    metrics::counter!(
        "gateway_requests_total",
        "api" => api.to_string(),
        "route" => route.to_string(),
        "status" => status.as_str().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn kept_handles_count_into_the_same_series_as_fresh_registrations() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            let m = RouteMetrics::default();
            for _ in 0..3 {
                m.count("pets", "GET /pets", StatusCode::OK);
            }
            m.count("pets", "GET /pets", StatusCode::BAD_GATEWAY);
            // A fresh registration of the same series adds to the kept handle's count.
            count("pets", "GET /pets", StatusCode::OK);
            count("pets", "", StatusCode::NOT_FOUND);
            m.upstream("pets", "GET /pets").record(0.5);
            m.upstream("pets", "GET /pets").record(1.5);
        });
        let text = handle.render();
        for line in [
            r#"gateway_requests_total{api="pets",route="GET /pets",status="200"} 4"#,
            r#"gateway_requests_total{api="pets",route="GET /pets",status="502"} 1"#,
            r#"gateway_requests_total{api="pets",route="",status="404"} 1"#,
            r#"gateway_upstream_duration_seconds_count{api="pets",route="GET /pets"} 2"#,
            r#"gateway_upstream_duration_seconds_sum{api="pets",route="GET /pets"} 2"#,
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}

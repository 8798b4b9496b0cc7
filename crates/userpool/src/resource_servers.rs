//! Resource servers: the custom OAuth scopes of a pool.

use crate::error::{Error, Result};
use crate::model::*;
use crate::paging::{self, Page};
use crate::store::{StoreError, UniqueKey};
use crate::{AdminGrant, Directory};

fn not_found(identifier: &str) -> Error {
    Error::not_found(format!("Resource server {identifier} does not exist."))
}

fn check_scopes(scopes: &[Scope]) -> Result<()> {
    for (i, s) in scopes.iter().enumerate() {
        if scopes[..i].iter().any(|o| o.name == s.name) {
            return Err(Error::invalid(format!("Duplicate scope name: {}", s.name)));
        }
    }
    Ok(())
}

impl Directory {
    pub async fn create_resource_server(
        &self,
        grant: &AdminGrant,
        rs: ResourceServer,
    ) -> Result<ResourceServer> {
        self.admin_pool(grant, &rs.pool_id).await?;
        check_scopes(&rs.scopes)?;
        match self.store.insert_resource_server(&rs).await {
            Ok(()) => Ok(rs),
            Err(StoreError::Conflict(UniqueKey::ResourceServer)) => Err(Error::invalid(format!(
                "A resource server with identifier {} already exists in this user pool.",
                rs.identifier
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn describe_resource_server(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        identifier: &str,
    ) -> Result<ResourceServer> {
        self.admin_pool(grant, pool_id).await?;
        self.store
            .get_resource_server(pool_id, identifier)
            .await?
            .ok_or_else(|| not_found(identifier))
    }

    pub async fn list_resource_servers(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page<ResourceServer>> {
        self.admin_pool(grant, pool_id).await?;
        let query = format!("resource-servers|{pool_id}");
        let after = paging::decode_opt(&query, token)?;
        let items = self
            .store
            .list_resource_servers(pool_id, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(&query, items, limit, |r| r.identifier.clone()))
    }

    pub async fn update_resource_server(
        &self,
        grant: &AdminGrant,
        rs: ResourceServer,
    ) -> Result<ResourceServer> {
        self.admin_pool(grant, &rs.pool_id).await?;
        check_scopes(&rs.scopes)?;
        if !self.store.update_resource_server(&rs).await? {
            return Err(not_found(&rs.identifier));
        }
        Ok(rs)
    }

    pub async fn delete_resource_server(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        identifier: &str,
    ) -> Result<()> {
        self.admin_pool(grant, pool_id).await?;
        if !self
            .store
            .delete_resource_server(pool_id, identifier)
            .await?
        {
            return Err(not_found(identifier));
        }
        Ok(())
    }
}

//! What the user directory needs from a database. Implemented once per engine in the `store`
//! crate; every method is one transaction, so no failed call leaves partial state, and every
//! uniqueness rule is a database constraint reported as [`StoreError::Conflict`].

use async_trait::async_trait;

use crate::model::*;

/// How old a `*_recent` read may be: what another node wrote shows within this time (sign-outs
/// and revocations included, well inside the one second the nodes promise each other).
pub const RECENT_TTL: std::time::Duration = std::time::Duration::from_millis(500);

/// The most groups a token lists for a user (Cognito caps memberships far lower).
pub const MAX_GROUPS_OF_USER: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueKey {
    Pool,
    Client,
    Username,
    Sub,
    EmailAlias,
    PhoneAlias,
    PreferredUsernameAlias,
    Group,
    ResourceServer,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("conflict on {0:?}")]
    Conflict(UniqueKey),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database holds unreadable data: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// How a user is looked up in a pool; keys are already normalised.
#[derive(Debug, Clone, Copy)]
pub enum UserKey<'a> {
    Username(&'a str),
    Sub(&'a str),
    EmailAlias(&'a str),
    PhoneAlias(&'a str),
    PreferredUsernameAlias(&'a str),
}

/// What a sign-in's lookup found: the user, or, for a name nobody has, the failed sign-ins
/// counted against that name (security checklist A1: such a name is locked out as a user is).
#[derive(Debug, Clone, PartialEq)]
pub enum SigningIn {
    User(Box<User>),
    Nobody(SignInFailures),
}

/// A ListUsers filter, already validated by the domain.
#[derive(Debug, Clone, PartialEq)]
pub struct UserFilter {
    pub field: FilterField,
    pub prefix: bool,
    pub value: String,
}

impl UserFilter {
    /// Whether pages of this filter follow the filtered value and then the username, rather
    /// than the username alone: prefix filters on e-mail or phone number, whose indexes hold
    /// both, so a page reads only matching users in page order.
    pub fn orders_by_value(&self) -> bool {
        self.prefix && matches!(self.field, FilterField::Email | FilterField::PhoneNumber)
    }
}

/// Where the next ListUsers page starts after `user`: its username key or, when the filter
/// [orders by value](UserFilter::orders_by_value), the value, a NUL, and the username key.
pub fn list_cursor(filter: Option<&UserFilter>, user: &User) -> String {
    match filter {
        Some(f) if f.orders_by_value() => {
            let value = match f.field {
                FilterField::Email => user.attributes.get("email").map(|e| e.to_lowercase()),
                _ => user.attributes.get("phone_number").cloned(),
            };
            format!("{}\0{}", value.unwrap_or_default(), user.username_key)
        }
        _ => user.username_key.clone(),
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterField {
    /// Compared with the normalised username key.
    Username,
    Sub,
    Email,
    PhoneNumber,
    /// `cognito:user_status`
    UserStatus,
    /// `status`: Enabled / Disabled
    Enabled,
    /// Any other searchable attribute, by name (name, given_name, …); not indexed.
    Attribute(String),
}

/// A code to store: `hash` is a keyed hash of the code, never the code.
#[derive(Debug, Clone)]
pub struct NewCode<'a> {
    pub pool_id: &'a str,
    pub sub: &'a str,
    pub purpose: CodePurpose,
    pub hash: &'a [u8],
    pub expires: Millis,
}

/// A failed sign-in to count ([`Store::count_sign_in_failure`]).
#[derive(Debug, Clone, Copy)]
pub struct Failure {
    pub now: Millis,
    /// A count whose last failure came before this starts again at one.
    pub forget_before: Millis,
    /// How long a count locks sign-ins out, from `now`, if at all.
    pub lock_for: fn(u32) -> Option<Millis>,
}

/// What [`Store::update_user_with_code`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodedUpdate {
    Written,
    /// Nothing written: the send limit refused the code.
    LimitReached,
    /// Nothing written: no user has the `sub` at the user's revision (gone, or written since).
    Stale,
}

/// A challenge session used up by the write it comes with ([`Store::update_user_spending`],
/// [`Store::insert_refresh_token_spending`], [`Store::put_code_spending`]): the write is made only if the session was unused,
/// and the session is used only if the write is made — a failure between them cannot leave an
/// answer neither taken nor retryable.
#[derive(Debug, Clone, Copy)]
pub struct SessionUse<'a> {
    pub id: &'a [u8],
    /// Until when the use is remembered (the session's own expiry).
    pub expires: Millis,
}

/// What [`Store::update_user_spending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendingUpdate {
    Written,
    /// Nothing written, the session left unused: no user has the `sub` at the user's revision.
    Stale,
    /// Nothing written: the session was used before.
    SessionUsed,
}

/// What [`Store::put_code_spending`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendingCode {
    Stored,
    /// Nothing stored, the session left unused: the send limit refused the code.
    LimitReached,
    /// Nothing stored: the session was used before.
    SessionUsed,
}

/// At most `max_sends` codes of one purpose to one user per window.
#[derive(Debug, Clone, Copy)]
pub struct SendLimit {
    pub now: Millis,
    pub window: Millis,
    pub max_sends: u32,
}

/// The outcome of trying a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redeem {
    Redeemed,
    /// The code matched but `then_store` was not at its revision (the user was written since
    /// it was read, or is gone): nothing written, the attempt not counted.
    Stale,
    NoCode,
    Mismatch,
    Expired,
    TooManyAttempts,
}

/// One attempt at a code: compared with `candidate` in constant time; on a match the code is used
/// up and `then_store` (if any) written, in one transaction.
pub struct CodeAttempt<'a> {
    pub sub: &'a str,
    pub purpose: CodePurpose,
    pub candidate: &'a [u8],
    pub now: Millis,
    pub max_attempts: u32,
    pub then_store: Option<&'a User>,
    /// Clear `then_store`'s aliases from any other user first (ForceAliasCreation).
    pub take_aliases: bool,
}

/// A refresh-token family as stored: only a keyed hash of the token itself.
#[derive(Debug, Clone, PartialEq)]
pub struct RefreshToken {
    pub token_hash: Vec<u8>,
    /// The family's id: every access and ID token minted from this refresh token carries it.
    pub origin_jti: String,
    pub pool_id: String,
    pub client_id: String,
    pub sub: String,
    /// Epoch seconds of the sign-in that started the family.
    pub auth_time: i64,
    pub created: Millis,
    pub expires: Millis,
    pub revoked: Option<Millis>,
    /// The token a rotation replaced, and until when it still works.
    pub previous_hash: Option<Vec<u8>>,
    pub previous_until: Option<Millis>,
}

/// A pool's signing key as stored: the private half sealed with the master key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub pool_id: String,
    pub kid: String,
    /// `id` or `access`
    pub key_use: String,
    pub private_sealed: Vec<u8>,
    /// The public JWK, as the JWKS lists it.
    pub jwk: String,
    pub created: Millis,
    /// Published from `created`, signs from here on.
    pub signs_from: Millis,
    /// Stops signing at this time; stays published until its tokens have expired.
    pub retired: Option<Millis>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Periodic upkeep (statistics for the query planner); cheap when nothing is due.
    async fn maintain(&self) -> StoreResult<()>;

    async fn get_meta(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Inserts the value unless the key exists; returns the value now stored.
    async fn init_meta(&self, key: &str, value: &[u8]) -> StoreResult<Vec<u8>>;

    async fn insert_pool(&self, pool: &Pool) -> StoreResult<()>;
    async fn get_pool(&self, id: &str) -> StoreResult<Option<Pool>>;
    /// [`Store::get_pool`] as it was at most [`RECENT_TTL`] ago (this node's writes at once).
    async fn get_pool_recent(&self, id: &str) -> StoreResult<Option<Pool>>;
    /// Pools ordered by id, after `after`.
    async fn list_pools(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Pool>>;
    async fn update_pool(&self, pool: &Pool) -> StoreResult<bool>;
    /// Deletes the pool and everything in it.
    async fn delete_pool(&self, id: &str) -> StoreResult<bool>;
    async fn count_users(&self, pool_id: &str) -> StoreResult<u64>;

    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    /// [`Store::get_client`] as it was at most [`RECENT_TTL`] ago (this node's writes at once).
    async fn get_client_recent(&self, client_id: &str) -> StoreResult<Option<Client>>;
    async fn list_clients(
        &self,
        pool_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Client>>;
    async fn update_client(&self, client: &Client) -> StoreResult<bool>;
    async fn delete_client(&self, pool_id: &str, client_id: &str) -> StoreResult<bool>;

    /// With `take_aliases`, first clears the user's aliases from whoever else holds them
    /// (ForceAliasCreation), and with `code` stores the user's first code, in the same
    /// transaction.
    async fn insert_user(
        &self,
        user: &User,
        take_aliases: bool,
        code: Option<&NewCode<'_>>,
    ) -> StoreResult<()>;
    async fn find_user(&self, pool_id: &str, key: UserKey<'_>) -> StoreResult<Option<User>>;
    /// The user by sub as it was at most [`RECENT_TTL`] ago (a per-node cache; this node's own
    /// writes show at once). For reads nothing is written from, such as GetUser.
    async fn find_user_recent(&self, pool_id: &str, sub: &str) -> StoreResult<Option<User>>;
    /// Replaces the user found by `sub`, all but `enabled` (see [`Store::set_user_enabled`]),
    /// if the row is still at `user.revision`; aliases may conflict (see `insert_user`). False
    /// when nothing was written: no such user, or it was written since it was read (read it
    /// again and make the change again — two changes made from one read never both land).
    async fn update_user(&self, user: &User, take_aliases: bool) -> StoreResult<bool>;
    /// [`Store::update_user`] (taking no aliases) with a session used up in the same transaction.
    async fn update_user_spending(
        &self,
        user: &User,
        session: SessionUse<'_>,
    ) -> StoreResult<SpendingUpdate>;
    /// Enables or disables the user `sub` at `now`; disabling also revokes every refresh-token
    /// family of theirs, in the same transaction. Whether the user exists. The only write of
    /// `enabled` after a user's creation ([`Store::update_user`] leaves it as it is), so a change
    /// made from an older read of the user cannot undo an AdminDisableUser; it advances the
    /// revision like any change, so such a change is made again over a fresh read (and the
    /// user's last-modified time never goes back).
    async fn set_user_enabled(
        &self,
        pool_id: &str,
        sub: &str,
        enabled: bool,
        now: Millis,
    ) -> StoreResult<bool>;
    /// Deletes the user with its codes and group memberships and revokes its refresh tokens
    /// at `now` (so its access tokens stop working too), in one transaction.
    async fn delete_user(&self, pool_id: &str, sub: &str, now: Millis) -> StoreResult<bool>;
    /// Users ordered by username key, after `after`.
    async fn list_users(
        &self,
        pool_id: &str,
        filter: Option<&UserFilter>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;

    /// Stores a fresh code (replacing an older one of the same purpose) unless the send limit
    /// is reached; returns whether it was stored.
    async fn put_code(&self, code: &NewCode<'_>, limit: SendLimit) -> StoreResult<bool>;
    /// [`Store::put_code`] with a session used up in the same transaction.
    async fn put_code_spending(
        &self,
        code: &NewCode<'_>,
        limit: SendLimit,
        session: SessionUse<'_>,
    ) -> StoreResult<SpendingCode>;
    /// Stores a fresh code for the user (as `put_code`) and replaces the user found by `sub`, in
    /// one transaction; writes neither when the send limit is reached or the user is gone.
    async fn update_user_with_code(
        &self,
        user: &User,
        code: &NewCode<'_>,
        limit: SendLimit,
    ) -> StoreResult<CodedUpdate>;
    async fn redeem_code(&self, attempt: &CodeAttempt<'_>) -> StoreResult<Redeem>;
    /// Makes every outstanding code of the user expired (a development hook).
    async fn expire_codes(&self, pool_id: &str, sub: &str, now: Millis) -> StoreResult<u64>;

    async fn insert_group(&self, group: &Group) -> StoreResult<()>;
    async fn get_group(&self, pool_id: &str, name: &str) -> StoreResult<Option<Group>>;
    async fn list_groups(
        &self,
        pool_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Group>>;
    async fn update_group(&self, group: &Group) -> StoreResult<bool>;
    async fn delete_group(&self, pool_id: &str, name: &str) -> StoreResult<bool>;
    /// Idempotent. Adds nothing when the group does not exist (one deleted since it was read),
    /// so a group deleted and made again starts empty; returns whether the user is a member.
    async fn add_member(&self, pool_id: &str, group: &str, sub: &str) -> StoreResult<bool>;
    async fn remove_member(&self, pool_id: &str, group: &str, sub: &str) -> StoreResult<()>;
    /// The user's groups ordered by name, after `after`.
    async fn groups_of_user(
        &self,
        pool_id: &str,
        sub: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Group>>;
    /// Every group of the user (up to [`MAX_GROUPS_OF_USER`]) as it was at most [`RECENT_TTL`]
    /// ago (this node's writes at once).
    async fn all_groups_of_user_recent(&self, pool_id: &str, sub: &str) -> StoreResult<Vec<Group>>;
    /// The group's users ordered by username key, after `after`.
    async fn users_in_group(
        &self,
        pool_id: &str,
        group: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;

    async fn insert_resource_server(&self, rs: &ResourceServer) -> StoreResult<()>;
    async fn get_resource_server(
        &self,
        pool_id: &str,
        identifier: &str,
    ) -> StoreResult<Option<ResourceServer>>;
    async fn list_resource_servers(
        &self,
        pool_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ResourceServer>>;
    async fn update_resource_server(&self, rs: &ResourceServer) -> StoreResult<bool>;
    async fn delete_resource_server(&self, pool_id: &str, identifier: &str) -> StoreResult<bool>;

    /// The development outbox.
    async fn insert_message(&self, message: &Message, sent: Millis) -> StoreResult<()>;
    async fn list_messages(
        &self,
        pool_id: &str,
        username: Option<&str>,
    ) -> StoreResult<Vec<StoredMessage>>;

    // Refresh tokens
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()>;
    /// [`Store::insert_refresh_token`] with a session used up in the same transaction; false
    /// (nothing stored) when the session was used before.
    async fn insert_refresh_token_spending(
        &self,
        token: &RefreshToken,
        session: SessionUse<'_>,
    ) -> StoreResult<bool>;
    /// The family whose current token, or whose token before the last rotation, has this hash.
    async fn find_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshToken>>;
    /// The family of a token a rotation replaced (kept until the family goes), for telling a
    /// replaced token from one never issued.
    async fn find_retired_refresh_token(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<RefreshToken>>;
    /// Replaces the family's current token `current` by `new`, recording `previous` (a hash
    /// and its deadline) and keeping `current` among the retired tokens; false when `current`
    /// is no longer current or the family is revoked.
    async fn rotate_refresh_token(
        &self,
        origin_jti: &str,
        current: &[u8],
        new: &[u8],
        previous: (&[u8], Millis),
    ) -> StoreResult<bool>;
    /// Revokes every refresh-token family of the user (GlobalSignOut); how many.
    async fn revoke_refresh_tokens(
        &self,
        pool_id: &str,
        sub: &str,
        now: Millis,
    ) -> StoreResult<u64>;
    /// Revokes one family (RevokeToken), by its id, which no rotation changes; whether it was
    /// live.
    async fn revoke_refresh_family(&self, origin_jti: &str, now: Millis) -> StoreResult<bool>;
    /// The family whose id is `origin_jti` (to check an access token against revocation).
    async fn refresh_family(&self, origin_jti: &str) -> StoreResult<Option<RefreshToken>>;
    /// [`Store::refresh_family`] as it was at most [`RECENT_TTL`] ago: a revocation on another
    /// node shows within that time, one on this node at once.
    async fn refresh_family_recent(&self, origin_jti: &str) -> StoreResult<Option<RefreshToken>>;

    /// Deletes sign-in state nobody can use any more: used-session records past their expiry,
    /// refresh-token families expired before `families_before`, and names nobody has whose last
    /// failed sign-in was before `failures_before`; how many rows.
    async fn purge_expired(
        &self,
        now: Millis,
        families_before: Millis,
        failures_before: Millis,
    ) -> StoreResult<u64>;

    // Lockout
    /// Counts a failed sign-in of the user and returns the count; where the count calls for a
    /// lockout, refuses the user's sign-ins until then, in the same transaction. 0: no such user.
    async fn count_sign_in_failure(
        &self,
        pool_id: &str,
        sub: &str,
        failure: Failure,
    ) -> StoreResult<u32>;
    /// Forgets the user's failed sign-ins (after a complete sign-in).
    async fn clear_sign_in_failures(&self, pool_id: &str, sub: &str) -> StoreResult<()>;
    /// The user `first` finds, or else the one `then` finds, or else the failures counted
    /// against `nobody`, a name nobody has: in one read either way, so that neither answer takes
    /// longer than the other.
    async fn find_signing_in(
        &self,
        pool_id: &str,
        first: UserKey<'_>,
        then: Option<UserKey<'_>>,
        nobody: &str,
    ) -> StoreResult<SigningIn>;
    /// [`Store::count_sign_in_failure`] for a name nobody has, keyed by `nobody`.
    async fn count_nobody_failure(
        &self,
        pool_id: &str,
        nobody: &str,
        failure: Failure,
    ) -> StoreResult<u32>;

    // Challenge sessions
    /// Marks a session used; false when it already was (sessions are single use).
    async fn use_session(&self, id: &[u8], expires: Millis) -> StoreResult<bool>;
    /// Whether the session was marked used.
    async fn session_used(&self, id: &[u8]) -> StoreResult<bool>;
    /// Accepts the user's authenticator code of time step `step` unless a code of this step or
    /// a later one was accepted before (each code works once); whether it did.
    async fn use_totp_step(&self, pool_id: &str, sub: &str, step: i64) -> StoreResult<bool>;

    // Signing keys
    /// Adds each of `keys` and retires, at its `signs_from`, every other unretired key of its
    /// pool and use, all in one transaction (a rotation is never left half done).
    async fn rotate_signing_keys(&self, keys: &[StoredKey]) -> StoreResult<()>;
    /// Adds `key` unless its pool already has an unretired key of that use; whether it did.
    async fn add_first_signing_key(&self, key: &StoredKey) -> StoreResult<bool>;
    /// Every key of the pool not yet deleted, oldest first.
    async fn signing_keys(&self, pool_id: &str) -> StoreResult<Vec<StoredKey>>;
    /// Deletes keys retired before `before`; returns how many.
    async fn delete_retired_keys(&self, before: Millis) -> StoreResult<u64>;
    /// Pools whose newest key of a use was created before `before` (due for rotation).
    async fn pools_with_keys_older_than(&self, before: Millis) -> StoreResult<Vec<String>>;
}

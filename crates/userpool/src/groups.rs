//! Groups and memberships.

use crate::error::{Error, Result};
use crate::model::*;
use crate::paging::{self, Page};
use crate::store::{StoreError, UniqueKey};
use crate::{AdminGrant, Directory};

/// Fields of CreateGroup / UpdateGroup; on update, omitted fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct GroupInput {
    pub description: Option<String>,
    pub role_arn: Option<String>,
    pub precedence: Option<i64>,
}

fn group_not_found() -> Error {
    Error::not_found("Group not found.")
}

impl Directory {
    async fn group(&self, pool_id: &str, name: &str) -> Result<Group> {
        self.store
            .get_group(pool_id, name)
            .await?
            .ok_or_else(group_not_found)
    }

    pub async fn create_group(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        name: &str,
        input: GroupInput,
    ) -> Result<Group> {
        self.admin_pool(grant, pool_id).await?;
        let now = self.now();
        let group = Group {
            pool_id: pool_id.to_string(),
            name: name.to_string(),
            description: input.description,
            role_arn: input.role_arn,
            precedence: input.precedence,
            created: now,
            modified: now,
        };
        match self.store.insert_group(&group).await {
            Ok(()) => Ok(group),
            Err(StoreError::Conflict(UniqueKey::Group)) => Err(Error::GroupExists(
                "A group with the name already exists.".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn get_group(&self, grant: &AdminGrant, pool_id: &str, name: &str) -> Result<Group> {
        self.admin_pool(grant, pool_id).await?;
        self.group(pool_id, name).await
    }

    pub async fn list_groups(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page<Group>> {
        self.admin_pool(grant, pool_id).await?;
        let query = format!("groups|{pool_id}");
        let after = paging::decode_opt(&query, token)?;
        let items = self
            .store
            .list_groups(pool_id, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(&query, items, limit, |g| g.name.clone()))
    }

    pub async fn update_group(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        name: &str,
        input: GroupInput,
    ) -> Result<Group> {
        self.admin_pool(grant, pool_id).await?;
        let mut group = self.group(pool_id, name).await?;
        if input.description.is_some() {
            group.description = input.description;
        }
        if input.role_arn.is_some() {
            group.role_arn = input.role_arn;
        }
        if input.precedence.is_some() {
            group.precedence = input.precedence;
        }
        group.modified = self.now();
        if !self.store.update_group(&group).await? {
            return Err(group_not_found());
        }
        Ok(group)
    }

    pub async fn delete_group(&self, grant: &AdminGrant, pool_id: &str, name: &str) -> Result<()> {
        self.admin_pool(grant, pool_id).await?;
        if !self.store.delete_group(pool_id, name).await? {
            return Err(group_not_found());
        }
        Ok(())
    }

    pub async fn add_user_to_group(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        self.group(pool_id, group).await?;
        if !self.store.add_member(pool_id, group, &user.sub).await? {
            // The group was deleted after it was read.
            return Err(group_not_found());
        }
        Ok(())
    }

    pub async fn remove_user_from_group(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        group: &str,
    ) -> Result<()> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        self.group(pool_id, group).await?;
        self.store.remove_member(pool_id, group, &user.sub).await?;
        Ok(())
    }

    pub async fn groups_for_user(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        username: &str,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page<Group>> {
        let pool = self.admin_pool(grant, pool_id).await?;
        let user = self.user(&pool, username).await?;
        let query = format!("user-groups|{pool_id}|{}", user.sub);
        let after = paging::decode_opt(&query, token)?;
        let items = self
            .store
            .groups_of_user(pool_id, &user.sub, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(&query, items, limit, |g| g.name.clone()))
    }

    pub async fn users_in_group(
        &self,
        grant: &AdminGrant,
        pool_id: &str,
        group: &str,
        limit: u32,
        token: Option<&str>,
    ) -> Result<Page<User>> {
        self.admin_pool(grant, pool_id).await?;
        self.group(pool_id, group).await?;
        let query = format!("group-users|{pool_id}|{group}");
        let after = paging::decode_opt(&query, token)?;
        let items = self
            .store
            .users_in_group(pool_id, group, after.as_deref(), limit + 1)
            .await?;
        Ok(paging::page(&query, items, limit, |u| {
            u.username_key.clone()
        }))
    }
}

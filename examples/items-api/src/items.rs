//! The business API's items, in their own table (never the token table, so
//! the business Lambda's role needs no access to tokens) under the owner's
//! partition: `PK = USER#<sub>`, `SK = ITEM#<id>`.
//!
//! Every call builds the key from the caller's `sub`, so one user can never
//! address another's items: object-level authorization by key design.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use agpat_context::UserId;
use agpat_context::http::{ApiError, FieldError};
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Why an item operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// DynamoDB could not be reached or refused the request.
    #[error("DynamoDB request failed: {0}")]
    Unavailable(String),
    /// A stored item does not have the shape this code writes.
    #[error("stored item is malformed: {0}")]
    Corrupt(&'static str),
    /// An item written by a newer schema version.
    #[error("stored item has unsupported schema version {0}")]
    UnsupportedSchema(u32),
    /// The pagination cursor was not produced by this API.
    #[error("invalid pagination cursor")]
    InvalidCursor,
}

/// Keeps only an SDK error's code and message (never request or item contents).
fn unavailable<E: ProvideErrorMetadata, R>(err: SdkError<E, R>) -> ItemError {
    let code = err.code().unwrap_or("unknown").to_owned();
    let message: String = err.message().unwrap_or("").chars().take(200).collect();
    ItemError::Unavailable(format!("{code}: {message}"))
}

impl From<ItemError> for ApiError {
    fn from(e: ItemError) -> Self {
        match e {
            ItemError::InvalidCursor => ApiError::Validation(vec![FieldError::new(
                "cursor",
                "is not a cursor from this API",
            )]),
            other => {
                tracing::error!(error = %other, "item store failure");
                ApiError::Internal
            }
        }
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Schema version of item records.
pub const ITEM_SCHEMA_VERSION: u32 = 1;

/// One item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    /// Time-ordered id: 12 hex digits of creation milliseconds + 16 random hex.
    pub id: String,
    /// Owner's `sub`.
    #[serde(skip)]
    pub owner: Option<UserId>,
    /// Title.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Optimistic-concurrency version; starts at 1, +1 per update.
    pub version: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Outcome of a conditional item write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemWrite {
    /// Written; the new state.
    Done(Item),
    /// No such item for this owner.
    NotFound,
    /// The stored version differs from the expected one.
    VersionConflict,
}

/// A page of items, newest first.
#[derive(Debug, Clone)]
pub struct ItemPage {
    /// The items.
    pub items: Vec<Item>,
    /// Opaque cursor for the next page.
    pub next: Option<String>,
}

/// Item persistence.
#[derive(Debug, Clone)]
pub struct ItemStore {
    client: Client,
    table: String,
}

fn key(owner: &UserId, id: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("PK".to_owned(), s(format!("USER#{owner}"))),
        ("SK".to_owned(), s(format!("ITEM#{id}"))),
    ])
}

/// Whether `id` has the shape we generate (so it is safe inside a key).
pub fn valid_item_id(id: &str) -> bool {
    id.len() == 28
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn is_condition_failure<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    use aws_sdk_dynamodb::error::ProvideErrorMetadata;
    e.code() == Some("ConditionalCheckFailedException")
}

fn item_from(map: &HashMap<String, AttributeValue>) -> Result<Item, ItemError> {
    let text = |k: &'static str| {
        map.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .ok_or(ItemError::Corrupt(k))
    };
    let num = |k: &'static str| {
        map.get(k)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<i64>().ok())
            .ok_or(ItemError::Corrupt(k))
    };
    let v = num("v")?;
    if v != i64::from(ITEM_SCHEMA_VERSION) {
        return Err(ItemError::UnsupportedSchema(
            u32::try_from(v).unwrap_or(u32::MAX),
        ));
    }
    Ok(Item {
        id: text("id")?,
        owner: UserId::parse(&text("owner")?).ok(),
        name: text("name")?,
        description: text("description")?,
        version: num("version")?,
        created_at: num("created_at")?,
        updated_at: num("updated_at")?,
    })
}

impl ItemStore {
    /// Items in `table` via `client`.
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    /// The table's name.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Creates the items table (local development and tests; the CDK app
    /// creates it on AWS): `PK`/`SK` strings, on demand.
    pub async fn create_table(&self) -> Result<(), ItemError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let mut request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest);
        for (name, kind) in [("PK", KeyType::Hash), ("SK", KeyType::Range)] {
            request = request
                .attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(name)
                        .attribute_type(ScalarAttributeType::S)
                        .build()
                        .map_err(|_| ItemError::Corrupt("attribute definition"))?,
                )
                .key_schema(
                    KeySchemaElement::builder()
                        .attribute_name(name)
                        .key_type(kind)
                        .build()
                        .map_err(|_| ItemError::Corrupt("key schema"))?,
                );
        }
        request.send().await.map_err(unavailable)?;
        Ok(())
    }

    /// A new time-ordered id from the clock and the OS CSPRNG.
    pub fn new_id(now_ms: i64) -> Result<String, ItemError> {
        // 64 bits of a v4 UUID: OS randomness (ids are unique, not secret).
        let random = u64::try_from(uuid::Uuid::new_v4().as_u128() & u128::from(u64::MAX))
            .map_err(|_| ItemError::Corrupt("randomness"))?;
        Ok(format!("{:012x}{random:016x}", now_ms.max(0)))
    }

    /// Creates an item (never overwrites).
    pub async fn create(
        &self,
        owner: &UserId,
        name: &str,
        description: &str,
        now: i64,
    ) -> Result<Item, ItemError> {
        let id = Self::new_id(now.saturating_mul(1000))?;
        let item = Item {
            id: id.clone(),
            owner: Some(owner.clone()),
            name: name.to_owned(),
            description: description.to_owned(),
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let mut attrs = key(owner, &id);
        attrs.insert("v".into(), n(i64::from(ITEM_SCHEMA_VERSION)));
        attrs.insert("id".into(), s(&id));
        attrs.insert("owner".into(), s(owner.as_str()));
        attrs.insert("name".into(), s(name));
        attrs.insert("description".into(), s(description));
        attrs.insert("version".into(), n(1));
        attrs.insert("created_at".into(), n(now));
        attrs.insert("updated_at".into(), n(now));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(attrs))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await
            .map_err(unavailable)?;
        Ok(item)
    }

    /// The owner's item, if any.
    pub async fn get(&self, owner: &UserId, id: &str) -> Result<Option<Item>, ItemError> {
        if !valid_item_id(id) {
            return Ok(None);
        }
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item().map(item_from).transpose()
    }

    /// The owner's items, newest first.
    pub async fn list(
        &self,
        owner: &UserId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<ItemPage, ItemError> {
        let start = match cursor {
            None => None,
            Some(c) => {
                let raw = URL_SAFE_NO_PAD
                    .decode(c.as_bytes())
                    .map_err(|_| ItemError::InvalidCursor)?;
                let id = String::from_utf8(raw).map_err(|_| ItemError::InvalidCursor)?;
                if !valid_item_id(&id) {
                    return Err(ItemError::InvalidCursor);
                }
                Some(key(owner, &id))
            }
        };
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk AND begins_with(SK, :item)")
            .expression_attribute_values(":pk", s(format!("USER#{owner}")))
            .expression_attribute_values(":item", s("ITEM#"))
            .scan_index_forward(false)
            .limit(limit.clamp(1, MAX_PAGE_SIZE))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(unavailable)?;
        let items = out
            .items()
            .iter()
            .map(item_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next = out
            .last_evaluated_key()
            .and_then(|k| k.get("SK"))
            .and_then(|v| v.as_s().ok())
            .and_then(|sk| sk.strip_prefix("ITEM#"))
            .map(|id| URL_SAFE_NO_PAD.encode(id));
        Ok(ItemPage { items, next })
    }

    /// Updates name and description if the stored version is `expected_version`.
    pub async fn update(
        &self,
        owner: &UserId,
        id: &str,
        name: &str,
        description: &str,
        expected_version: i64,
        now: i64,
    ) -> Result<ItemWrite, ItemError> {
        if !valid_item_id(id) {
            return Ok(ItemWrite::NotFound);
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .update_expression("SET #name = :name, description = :desc, version = version + :one, updated_at = :now")
            .condition_expression("attribute_exists(PK) AND version = :expected")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":name", s(name))
            .expression_attribute_values(":desc", s(description))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":expected", n(expected_version))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes() {
                Some(attrs) => Ok(ItemWrite::Done(item_from(attrs)?)),
                None => Err(ItemError::Corrupt("update returned nothing")),
            },
            Err(e) if is_condition_failure(&e) => match self.get(owner, id).await? {
                None => Ok(ItemWrite::NotFound),
                Some(_) => Ok(ItemWrite::VersionConflict),
            },
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes the owner's item. `false` if there was none.
    pub async fn delete(&self, owner: &UserId, id: &str) -> Result<bool, ItemError> {
        if !valid_item_id(id) {
            return Ok(false);
        }
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(owner, id)))
            .condition_expression("attribute_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_well_formed() {
        let a = ItemStore::new_id(1_000).unwrap();
        let b = ItemStore::new_id(2_000).unwrap();
        assert!(valid_item_id(&a) && valid_item_id(&b));
        assert!(a < b);
        for bad in ["", "x", "../../etc", &"A".repeat(28), &"0".repeat(29)] {
            assert!(!valid_item_id(bad), "{bad}");
        }
    }
}

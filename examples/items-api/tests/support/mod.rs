//! Helpers shared by the example's tests.

use items_api::items::ItemStore;

/// An item store over a brand-new items table on `client` (moto).
///
/// # Panics
/// If the table cannot be created: the test cannot run.
#[expect(clippy::panic, reason = "a test helper fails loudly")]
pub async fn fresh_items(client: &aws_sdk_dynamodb::Client) -> ItemStore {
    let items = ItemStore::new(
        client.clone(),
        format!("test-items-{}", uuid::Uuid::new_v4()),
    );
    if let Err(e) = items.create_table().await {
        panic!("cannot create test items table: {e}");
    }
    items
}

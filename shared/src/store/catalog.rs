//! Products and prices. A price is written in one transaction with a check that its
//! product still exists and is not being deleted, so no price can ever point at a
//! missing product.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem};

use super::{Item, Store, dynamo_error, is_conditional_failure, key_item, keys, n, s, to_item};
use crate::deadline::WithinDeadline;
use crate::error::{ApiError, ErrorCode};
use crate::ids::{PriceId, ProductId, ProjectId};
use crate::input::Page;
use crate::model::{Price, Product};

/// Most items one `TransactWriteItems` takes.
const TRANSACTION_LIMIT: usize = 100;

fn active_filter(active_only: bool) -> Option<(&'static str, HashMap<String, AttributeValue>)> {
    active_only.then(|| {
        (
            "isActive = :active",
            HashMap::from([(":active".to_owned(), AttributeValue::Bool(true))]),
        )
    })
}

fn product_item(product: &Product) -> Result<Item, ApiError> {
    to_item(
        product,
        keys::object(&product.project_id, keys::PRODUCT, &product.id),
        "product",
    )
}

fn price_item(price: &Price) -> Result<Item, ApiError> {
    let mut item = to_item(
        price,
        keys::object(&price.project_id, keys::PRICE, &price.id),
        "price",
    )?;
    item.insert(
        keys::GSI1PK.to_owned(),
        s(keys::prices_of_product(
            &price.project_id,
            &price.product_id,
        )),
    );
    item.insert(
        keys::GSI1SK.to_owned(),
        s(format!("{}{}", keys::PRICE, price.id)),
    );
    Ok(item)
}

/// Why a conditional write of a catalog object did not happen.
fn stale(what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::ConcurrentUpdate,
        format!("The {what} was changed or deleted by another request; fetch it and retry"),
    )
}

impl Store {
    pub async fn get_product(
        &self,
        project_id: &ProjectId,
        product_id: &ProductId,
    ) -> Result<Option<Product>, ApiError> {
        self.get(keys::object(project_id, keys::PRODUCT, product_id))
            .await
    }

    /// Newest first; inactive ones filtered out with `active_only` (DynamoDB reads them,
    /// then drops them: a project's products are few).
    pub async fn list_products(
        &self,
        project_id: &ProjectId,
        page: &Page,
        active_only: bool,
    ) -> Result<(Vec<Product>, bool), ApiError> {
        self.list_objects(project_id, keys::PRODUCT, page, active_filter(active_only))
            .await
    }

    pub async fn insert_product(&self, product: &Product) -> Result<(), ApiError> {
        if self
            .put_conditional(
                product_item(product)?,
                "attribute_not_exists(pk)",
                HashMap::new(),
            )
            .await?
        {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::AlreadyExists,
                "A product with this ID already exists",
            ))
        }
    }

    /// Replaces a product whose stored version is `expected_version`.
    pub async fn replace_product(
        &self,
        product: &Product,
        expected_version: u64,
    ) -> Result<(), ApiError> {
        let written = self
            .put_conditional(
                product_item(product)?,
                "version = :expected",
                HashMap::from([(":expected".to_owned(), n(expected_version))]),
            )
            .await?;
        if written {
            Ok(())
        } else {
            Err(stale("product"))
        }
    }

    /// Marks a product as being deleted, from the version `product` was read at; the mark
    /// is a new version, so a write based on an earlier read (a PATCH in flight) fails its
    /// version condition instead of writing the mark away. Answers the product as marked.
    pub async fn mark_product_deleting(&self, product: &Product) -> Result<Product, ApiError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::object(
                &product.project_id,
                keys::PRODUCT,
                &product.id,
            ))))
            .update_expression("SET deleting = :true, version = :next")
            .condition_expression("version = :expected")
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .expression_attribute_values(":next", n(product.version + 1))
            .expression_attribute_values(":expected", n(product.version))
            .send()
            .within_deadline()
            .await;
        match result {
            Ok(_) => Ok(Product {
                deleting: true,
                version: product.version + 1,
                ..product.clone()
            }),
            Err(err) if is_conditional_failure(&err) => Err(stale("product")),
            Err(err) => Err(dynamo_error(err)),
        }
    }

    /// Deletes a product's prices and then the product, in transactions of at most 100
    /// items (the product goes in the last one).
    pub async fn delete_product_with_prices(
        &self,
        product: &Product,
        prices: &[Price],
    ) -> Result<(), ApiError> {
        let mut deletes: Vec<TransactWriteItem> = Vec::with_capacity(prices.len() + 1);
        for price in prices {
            deletes.push(self.delete_op(keys::object(
                &price.project_id,
                keys::PRICE,
                &price.id,
            ))?);
        }
        deletes.push(self.delete_op(keys::object(
            &product.project_id,
            keys::PRODUCT,
            &product.id,
        ))?);
        // Unconditional deletes: a transaction of them is applied or fails as a whole.
        for chunk in deletes.chunks(TRANSACTION_LIMIT) {
            self.transact(chunk.to_vec()).await?;
        }
        Ok(())
    }

    fn delete_op(&self, key: (String, String)) -> Result<TransactWriteItem, ApiError> {
        let delete = Delete::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(key)))
            .build()
            .map_err(ApiError::internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    pub async fn get_price(
        &self,
        project_id: &ProjectId,
        price_id: &PriceId,
    ) -> Result<Option<Price>, ApiError> {
        self.get(keys::object(project_id, keys::PRICE, price_id))
            .await
    }

    /// Newest first. With `product_id`, a `Query` of that product's prices on `gsi1`
    /// (reads only them); otherwise the project's prices.
    pub async fn list_prices(
        &self,
        project_id: &ProjectId,
        page: &Page,
        active_only: bool,
        product_id: Option<&ProductId>,
    ) -> Result<(Vec<Price>, bool), ApiError> {
        let Some(product_id) = product_id else {
            return self
                .list_objects(project_id, keys::PRICE, page, active_filter(active_only))
                .await;
        };
        let partition = keys::prices_of_product(project_id, product_id);
        let start_after = page.starting_after.as_deref().map(|id| {
            let (pk, sk) = keys::object(project_id, keys::PRICE, id);
            Item::from([
                (keys::PK.to_owned(), s(pk)),
                (keys::SK.to_owned(), s(sk.clone())),
                (keys::GSI1PK.to_owned(), s(partition.clone())),
                (keys::GSI1SK.to_owned(), s(sk)),
            ])
        });
        self.query_newest_first(
            Some(keys::GSI1),
            (keys::GSI1PK, partition.clone()),
            (keys::GSI1SK, keys::PRICE.to_owned()),
            start_after,
            page,
            active_filter(active_only),
        )
        .await
    }

    /// Every price of a product, read strongly consistently from the project's partition
    /// (a delete must not miss a price created a moment ago).
    pub async fn prices_of_product(
        &self,
        project_id: &ProjectId,
        product_id: &ProductId,
    ) -> Result<Vec<Price>, ApiError> {
        let page = Page {
            limit: None,
            offset: 0,
            starting_after: None,
        };
        let filter = (
            "productId = :product",
            HashMap::from([(":product".to_owned(), s(product_id))]),
        );
        let (prices, _) = self
            .list_objects(project_id, keys::PRICE, &page, Some(filter))
            .await?;
        Ok(prices)
    }

    /// Writes a new price if its product still exists and is not being deleted; 409 if not.
    pub async fn insert_price(&self, price: &Price) -> Result<(), ApiError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(price_item(price)?))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(ApiError::internal)?;
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key_item(keys::object(
                &price.project_id,
                keys::PRODUCT,
                &price.product_id,
            ))))
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(deleting) OR deleting = :false)",
            )
            .expression_attribute_values(":false", AttributeValue::Bool(false))
            .build()
            .map_err(ApiError::internal)?;
        let outcome = self
            .transact(vec![
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder().condition_check(check).build(),
            ])
            .await?;
        match outcome {
            super::TxOutcome::Applied => Ok(()),
            super::TxOutcome::ConditionFailed(_) => Err(ApiError::new(
                ErrorCode::ProductDeleted,
                format!(
                    "Product {} was deleted while the price was being created",
                    price.product_id
                ),
            )
            .with_param("productId")),
        }
    }

    /// Replaces a price whose stored version is `expected_version`.
    pub async fn replace_price(
        &self,
        price: &Price,
        expected_version: u64,
    ) -> Result<(), ApiError> {
        let written = self
            .put_conditional(
                price_item(price)?,
                "version = :expected",
                HashMap::from([(":expected".to_owned(), n(expected_version))]),
            )
            .await?;
        if written { Ok(()) } else { Err(stale("price")) }
    }

    /// Deletes a price; `false` if it was not there.
    pub async fn delete_price(&self, price: &Price) -> Result<bool, ApiError> {
        self.delete_existing(keys::object(&price.project_id, keys::PRICE, &price.id))
            .await
    }
}

use serde_json::json;
use stripe_product::price::{CreatePrice, UpdatePrice};
use stripe_product::product::{
    CreateProduct, DeleteProduct, ListProduct, RetrieveProduct, UpdateProduct,
};
use stripe_shared::{Product, ProductType};
use stripe_types::Currency;

use crate::common::{TestResult, api_error, call, metadata, setup};

fn ids(list: &[Product]) -> Vec<String> {
    list.iter().map(|p| p.id.to_string()).collect()
}

#[tokio::test]
async fn product_create_retrieve_update() -> TestResult {
    let (emu, client) = setup().await?;
    let p = CreateProduct::new("Pro")
        .description("the pro plan")
        .metadata(metadata(&[("tier", "2")]))
        .send(&client)
        .await?;
    let id = p.id.to_string();
    assert!(id.starts_with("prod_") && id.len() == 19, "{id}");
    assert!(p.active);
    assert_eq!(p.name, "Pro");
    assert_eq!(p.description.as_deref(), Some("the pro plan"));
    assert_eq!(p.type_, ProductType::Service);
    assert_eq!(p.updated, p.created);
    assert_eq!(p.metadata, metadata(&[("tier", "2")]));
    assert!(!p.livemode);

    let fetched = RetrieveProduct::new(id.as_str()).send(&client).await?;
    assert_eq!(fetched.id, p.id);

    let updated = UpdateProduct::new(id.as_str())
        .name("Pro 2")
        .active(false)
        .description("")
        .metadata(metadata(&[("tier", ""), ("k", "v")]))
        .send(&client)
        .await?;
    assert_eq!(updated.name, "Pro 2");
    assert!(!updated.active);
    assert_eq!(updated.description, None);
    assert_eq!(updated.metadata, metadata(&[("k", "v")]));
    assert!(updated.updated >= p.updated);
    let stored = emu.product(&id).ok_or("missing")?;
    assert_eq!(stored["active"], json!(false));
    assert_eq!(stored["name"], "Pro 2");

    // `name` is required and cannot be unset.
    let r = call(&emu, "POST", "/v1/products", "description=no+name").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_message(), "Missing required param: name.");
    assert_eq!(r.body["error"]["param"], "name");
    assert_eq!(r.body["error"]["code"], "parameter_missing");
    let r = call(&emu, "POST", "/v1/products", "name=").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["param"], "name");
    let (status, err) = api_error(UpdateProduct::new(id.as_str()).name("").send(&client).await);
    assert_eq!((status, err.param.as_deref()), (400, Some("name")));
    let r = call(&emu, "POST", "/v1/products", "name=x&active=maybe").await?;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["param"], "active");
    assert_eq!(emu.products().len(), 1);

    let (status, err) = api_error(RetrieveProduct::new("prod_nope").send(&client).await);
    assert_eq!(status, 404);
    assert_eq!(err.message.as_deref(), Some("No such product: 'prod_nope'"));
    Ok(())
}

#[tokio::test]
async fn list_products_by_active_with_pagination() -> TestResult {
    let (_emu, client) = setup().await?;
    let a = CreateProduct::new("a").send(&client).await?.id.to_string();
    let b = CreateProduct::new("b")
        .active(false)
        .send(&client)
        .await?
        .id
        .to_string();
    let c = CreateProduct::new("c").send(&client).await?.id.to_string();
    let d = CreateProduct::new("d").send(&client).await?.id.to_string();

    let all = ListProduct::new().send(&client).await?;
    assert_eq!(
        ids(&all.data),
        vec![d.clone(), c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(all.url, "/v1/products");
    let active = ListProduct::new().active(true).send(&client).await?;
    assert_eq!(ids(&active.data), vec![d.clone(), c.clone(), a.clone()]);
    let inactive = ListProduct::new().active(false).send(&client).await?;
    assert_eq!(ids(&inactive.data), vec![b.clone()]);

    let page = ListProduct::new()
        .active(true)
        .limit(2)
        .send(&client)
        .await?;
    assert_eq!(ids(&page.data), vec![d.clone(), c.clone()]);
    assert!(page.has_more);
    let next = ListProduct::new()
        .active(true)
        .limit(2)
        .starting_after(c.as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&next.data), vec![a.clone()]);
    assert!(!next.has_more);
    Ok(())
}

#[tokio::test]
async fn product_delete_is_refused_while_prices_exist() -> TestResult {
    let (emu, client) = setup().await?;
    let with_price = CreateProduct::new("priced").send(&client).await?;
    let price = CreatePrice::new(Currency::USD)
        .product(with_price.id.as_str())
        .unit_amount(500)
        .send(&client)
        .await?;

    let (status, err) = api_error(
        DeleteProduct::new(with_price.id.as_str())
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        err.message.as_deref(),
        Some("This product cannot be deleted because it has one or more user-created prices.")
    );
    // Archiving the price does not make the product deletable either.
    UpdatePrice::new(price.id.as_str())
        .active(false)
        .send(&client)
        .await?;
    let (status, _) = api_error(
        DeleteProduct::new(with_price.id.as_str())
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        emu.product(with_price.id.as_str()).ok_or("missing")?["object"],
        "product"
    );

    let bare = CreateProduct::new("bare").send(&client).await?;
    let bare_id = bare.id.to_string();
    let deleted = DeleteProduct::new(bare_id.as_str()).send(&client).await?;
    assert_eq!(deleted.id, bare.id);
    let (status, err) = api_error(RetrieveProduct::new(bare_id.as_str()).send(&client).await);
    assert_eq!(status, 404);
    assert_eq!(err.message, Some(format!("No such product: '{bare_id}'")));
    assert_eq!(
        emu.product(&bare_id),
        Some(json!({"id": bare_id, "object": "product", "deleted": true}))
    );
    assert_eq!(emu.products().len(), 1);

    // No new price on a deleted product.
    let (status, err) = api_error(
        CreatePrice::new(Currency::USD)
            .product(bare_id.as_str())
            .unit_amount(1)
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(err.param.as_deref(), Some("product"));
    Ok(())
}

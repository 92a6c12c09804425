use serde_json::json;
use stripe_product::price::{
    CreatePrice, CreatePriceRecurring, CreatePriceRecurringInterval, ListPrice, RetrievePrice,
    UpdatePrice,
};
use stripe_product::product::CreateProduct;
use stripe_shared::{Price, PriceBillingScheme, PriceType, RecurringInterval, RecurringUsageType};
use stripe_types::Currency;

use crate::common::{TestResult, api_error, call, metadata, setup};

fn ids(list: &[Price]) -> Vec<String> {
    list.iter().map(|p| p.id.to_string()).collect()
}

#[tokio::test]
async fn create_recurring_and_one_time_prices() -> TestResult {
    let (emu, client) = setup().await?;
    let product = CreateProduct::new("Pro").send(&client).await?;
    let pid = product.id.as_str();

    let quarterly = CreatePrice::new(Currency::USD)
        .product(pid)
        .unit_amount(2500)
        .recurring(CreatePriceRecurring {
            interval_count: Some(3),
            ..CreatePriceRecurring::new(CreatePriceRecurringInterval::Month)
        })
        .nickname("quarterly")
        .metadata(metadata(&[("plan", "pro")]))
        .send(&client)
        .await?;
    let qid = quarterly.id.to_string();
    assert!(qid.starts_with("price_") && qid.len() == 20, "{qid}");
    assert_eq!(quarterly.type_, PriceType::Recurring);
    assert_eq!(quarterly.unit_amount, Some(2500));
    assert_eq!(quarterly.unit_amount_decimal.as_deref(), Some("2500"));
    assert_eq!(quarterly.currency, Currency::USD);
    assert_eq!(quarterly.billing_scheme, PriceBillingScheme::PerUnit);
    assert_eq!(quarterly.product.id().as_str(), pid);
    assert!(quarterly.active);
    assert_eq!(quarterly.nickname.as_deref(), Some("quarterly"));
    assert_eq!(quarterly.metadata, metadata(&[("plan", "pro")]));
    let recurring = quarterly.recurring.as_ref().ok_or("recurring missing")?;
    assert_eq!(recurring.interval, RecurringInterval::Month);
    assert_eq!(recurring.interval_count, 3);
    assert_eq!(recurring.usage_type, RecurringUsageType::Licensed);

    let yearly = CreatePrice::new(Currency::USD)
        .product(pid)
        .unit_amount(10000)
        .recurring(CreatePriceRecurring::new(
            CreatePriceRecurringInterval::Year,
        ))
        .send(&client)
        .await?;
    assert_eq!(yearly.recurring.as_ref().map(|r| r.interval_count), Some(1));

    let once = CreatePrice::new(Currency::EUR)
        .product(pid)
        .unit_amount(0)
        .active(false)
        .send(&client)
        .await?;
    assert_eq!(once.type_, PriceType::OneTime);
    assert!(once.recurring.is_none());
    assert!(!once.active);

    // Currency is stored lower-case, whatever the case sent.
    let r = call(
        &emu,
        "POST",
        "/v1/prices",
        &format!("product={pid}&unit_amount=100&currency=GBP"),
    )
    .await?;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["currency"], "gbp");
    assert_eq!(r.body["type"], "one_time");

    assert_eq!(emu.prices().len(), 4);
    assert_eq!(
        emu.price(&qid).ok_or("missing")?["recurring"]["interval_count"],
        json!(3)
    );
    Ok(())
}

#[tokio::test]
async fn invalid_prices_are_refused() -> TestResult {
    let (emu, client) = setup().await?;
    let product = CreateProduct::new("Pro").send(&client).await?;
    let pid = product.id.to_string();

    let (status, err) = api_error(
        CreatePrice::new(Currency::USD)
            .product("prod_missing")
            .unit_amount(1)
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        err.message.as_deref(),
        Some("No such product: 'prod_missing'")
    );
    assert_eq!(err.param.as_deref(), Some("product"));

    let (status, err) = api_error(
        CreatePrice::new(Currency::USD)
            .unit_amount(1)
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        err.message.as_deref(),
        Some("Missing required param: product.")
    );

    let (status, err) = api_error(
        CreatePrice::new(Currency::USD)
            .product(pid.as_str())
            .unit_amount(-1)
            .send(&client)
            .await,
    );
    assert_eq!((status, err.param.as_deref()), (400, Some("unit_amount")));

    let cases = [
        (format!("product={pid}&unit_amount=1"), "currency"),
        (
            format!("product={pid}&unit_amount=1&currency=dollars"),
            "currency",
        ),
        (
            format!("product={pid}&unit_amount=abc&currency=usd"),
            "unit_amount",
        ),
        (
            format!("product={pid}&unit_amount=1&currency=usd&recurring[interval]=fortnight"),
            "recurring[interval]",
        ),
        (
            format!(
                "product={pid}&unit_amount=1&currency=usd&recurring[interval]=month&recurring[interval_count]=0"
            ),
            "recurring[interval_count]",
        ),
        (
            format!(
                "product={pid}&unit_amount=1&currency=usd&recurring[interval]=month&recurring[interval_count]=37"
            ),
            "recurring[interval_count]",
        ),
        (
            format!("product={pid}&unit_amount=1&currency=usd&recurring[foo]=1"),
            "recurring[foo]",
        ),
        (
            format!("product={pid}&unit_amount=1&currency=usd&lookup_key=x"),
            "lookup_key",
        ),
    ];
    for (body, param) in cases {
        let r = call(&emu, "POST", "/v1/prices", &body).await?;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["param"], param, "{body}: {}", r.text);
    }
    let r = call(
        &emu,
        "POST",
        "/v1/prices",
        &format!("product={pid}&unit_amount=1&currency=usd&recurring[foo]=1"),
    )
    .await?;
    assert_eq!(
        r.error_message(),
        "Received unknown parameter: recurring[foo]"
    );
    assert!(
        emu.prices().is_empty(),
        "refused creates must not create anything"
    );
    Ok(())
}

#[tokio::test]
async fn prices_are_immutable_but_active_metadata_nickname() -> TestResult {
    let (emu, client) = setup().await?;
    let product = CreateProduct::new("Pro").send(&client).await?;
    let price = CreatePrice::new(Currency::USD)
        .product(product.id.as_str())
        .unit_amount(1000)
        .metadata(metadata(&[("a", "1"), ("b", "2")]))
        .send(&client)
        .await?;
    let id = price.id.to_string();

    let updated = UpdatePrice::new(id.as_str())
        .active(false)
        .nickname("legacy")
        .metadata(metadata(&[("a", ""), ("c", "3")]))
        .send(&client)
        .await?;
    assert!(!updated.active);
    assert_eq!(updated.nickname.as_deref(), Some("legacy"));
    assert_eq!(updated.metadata, metadata(&[("b", "2"), ("c", "3")]));
    assert_eq!(updated.unit_amount, Some(1000));

    for (body, param) in [
        ("unit_amount=5", "unit_amount"),
        ("currency=eur", "currency"),
        ("product=prod_x", "product"),
        ("recurring[interval]=month", "recurring"),
    ] {
        let r = call(&emu, "POST", &format!("/v1/prices/{id}"), body).await?;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(
            r.error_message(),
            format!("Received unknown parameter: {param}")
        );
        assert_eq!(r.body["error"]["param"], param);
    }
    let (status, err) = api_error(
        UpdatePrice::new(id.as_str())
            .lookup_key("k")
            .send(&client)
            .await,
    );
    assert_eq!(status, 400);
    assert_eq!(
        err.message.as_deref(),
        Some("Received unknown parameter: lookup_key")
    );

    let stored = emu.price(&id).ok_or("missing")?;
    assert_eq!(stored["unit_amount"], json!(1000));
    assert_eq!(stored["currency"], "usd");

    // Prices cannot be deleted: the route does not exist.
    let r = call(&emu, "DELETE", &format!("/v1/prices/{id}"), "").await?;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["type"], "invalid_request_error");
    assert!(r.error_message().starts_with(&format!(
        "Unrecognized request URL (DELETE: /v1/prices/{id})"
    )));
    assert!(emu.price(&id).is_some());

    let (status, err) = api_error(
        UpdatePrice::new("price_missing")
            .active(true)
            .send(&client)
            .await,
    );
    assert_eq!(status, 404);
    assert_eq!(
        err.message.as_deref(),
        Some("No such price: 'price_missing'")
    );
    Ok(())
}

#[tokio::test]
async fn list_prices_filters_paginates_and_expands() -> TestResult {
    let (_emu, client) = setup().await?;
    let p1 = CreateProduct::new("one")
        .send(&client)
        .await?
        .id
        .to_string();
    let p2 = CreateProduct::new("two")
        .send(&client)
        .await?
        .id
        .to_string();
    let new_price = |product: String, amount: i64, active: bool| {
        let client = client.clone();
        async move {
            CreatePrice::new(Currency::USD)
                .product(product)
                .unit_amount(amount)
                .active(active)
                .send(&client)
                .await
                .map(|p| p.id.to_string())
        }
    };
    let a = new_price(p1.clone(), 100, true).await?;
    let b = new_price(p1.clone(), 200, false).await?;
    let c = new_price(p2.clone(), 300, true).await?;
    let d = new_price(p1.clone(), 400, true).await?;

    let all = ListPrice::new().send(&client).await?;
    assert_eq!(
        ids(&all.data),
        vec![d.clone(), c.clone(), b.clone(), a.clone()]
    );
    assert_eq!(all.url, "/v1/prices");
    let of_p1 = ListPrice::new().product(p1.as_str()).send(&client).await?;
    assert_eq!(ids(&of_p1.data), vec![d.clone(), b.clone(), a.clone()]);
    let active_p1 = ListPrice::new()
        .product(p1.as_str())
        .active(true)
        .send(&client)
        .await?;
    assert_eq!(ids(&active_p1.data), vec![d.clone(), a.clone()]);
    let inactive = ListPrice::new().active(false).send(&client).await?;
    assert_eq!(ids(&inactive.data), vec![b.clone()]);
    let page = ListPrice::new()
        .product(p1.as_str())
        .limit(1)
        .starting_after(d.as_str())
        .send(&client)
        .await?;
    assert_eq!(ids(&page.data), vec![b.clone()]);
    assert!(page.has_more);

    let expanded = RetrievePrice::new(c.as_str())
        .expand(vec!["product".to_string()])
        .send(&client)
        .await?;
    let product = expanded.product.as_object().ok_or("product not expanded")?;
    assert_eq!(product.name, "two");
    let plain = RetrievePrice::new(c.as_str()).send(&client).await?;
    assert!(!plain.product.is_object());

    let listed = ListPrice::new()
        .product(p2.as_str())
        .expand(vec!["data.product".to_string()])
        .send(&client)
        .await?;
    assert_eq!(listed.data.len(), 1);
    assert_eq!(
        listed.data[0].product.as_object().map(|p| p.name.as_str()),
        Some("two")
    );
    Ok(())
}

use std::process::Stdio;
use std::time::Duration;

use stripe_core::customer::CreateCustomer;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::common::{TEST_KEY, TestResult};

#[tokio::test]
async fn binary_prints_its_url_and_serves() -> TestResult {
    let mut child = Command::new(env!("CARGO_BIN_EXE_stripe-emulator"))
        .args(["--port", "0"])
        .env_remove("STRIPE_EMULATOR_PORT")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    tokio::time::timeout(
        Duration::from_secs(20),
        BufReader::new(stdout).read_line(&mut line),
    )
    .await??;
    let url = line
        .trim_end()
        .strip_prefix("stripe emulator listening on ")
        .ok_or_else(|| format!("unexpected first line {line:?}"))?
        .to_string();
    let port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .ok_or("not a loopback url")?
        .parse()?;
    assert_ne!(port, 0);

    let client = stripe::ClientBuilder::new(TEST_KEY).url(url).build()?;
    let customer = CreateCustomer::new()
        .email("bin@example.com")
        .send(&client)
        .await?;
    assert!(customer.id.as_str().starts_with("cus_"));

    child.start_kill()?;
    child.wait().await?;
    Ok(())
}

#[tokio::test]
async fn dropping_the_emulator_stops_it() -> TestResult {
    let emulator = stripe_emulator::StripeEmulator::start(0).await?;
    let addr = emulator.addr();
    assert_eq!(emulator.url(), format!("http://127.0.0.1:{}", addr.port()));
    tokio::net::TcpStream::connect(addr).await?;
    drop(emulator);
    let mut refused = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the port still accepts connections after drop");
    Ok(())
}

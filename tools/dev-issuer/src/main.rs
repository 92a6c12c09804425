//! `dev-issuer`: the development OpenID Connect issuer on its own, on
//! 127.0.0.1:$BILLSTACK_ISSUER_PORT (default 3001). `scripts/local` starts the same issuer
//! in-process; this binary serves a function run with `cargo lambda watch` or `sam local`.

#[tokio::main]
async fn main() {
    let port = std::env::var("BILLSTACK_ISSUER_PORT")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| v.parse::<u16>())
        .transpose();
    let port = match port {
        Ok(port) => port.unwrap_or(3001),
        Err(_) => {
            eprintln!("dev-issuer: BILLSTACK_ISSUER_PORT must be a port number");
            std::process::exit(2);
        }
    };
    let issuer = match dev_issuer::DevIssuer::start(port).await {
        Ok(issuer) => issuer,
        Err(err) => {
            eprintln!("dev-issuer: cannot listen on 127.0.0.1:{port}: {err}");
            std::process::exit(1);
        }
    };
    println!(
        "development OIDC issuer on {} (audience {}); mint a token with: curl -s -X POST {}/token -d '{{\"sub\": \"user_demo\"}}'",
        issuer.url(),
        dev_issuer::DEFAULT_AUDIENCE,
        issuer.url()
    );
    let _ = tokio::signal::ctrl_c().await;
}

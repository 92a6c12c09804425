//! `billstack-openapi`: writes the API's OpenAPI document to `docs/openapi.json`.
//!
//!     cargo run -p billstack-openapi            # write it
//!     cargo run -p billstack-openapi -- --check # exit 1 if the committed one differs
//!     cargo run -p billstack-openapi -- -       # print it

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let text = billstack_openapi::document_json();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(billstack_openapi::DOCUMENT_PATH);
    match std::env::args().nth(1).as_deref() {
        Some("-") => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some("--check") => {
            if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "{} is not the document the code describes: run cargo run -p billstack-openapi",
                    billstack_openapi::DOCUMENT_PATH
                );
                ExitCode::FAILURE
            }
        }
        None => match std::fs::write(&path, text) {
            Ok(()) => {
                eprintln!("wrote {}", billstack_openapi::DOCUMENT_PATH);
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("cannot write {}: {err}", path.display());
                ExitCode::FAILURE
            }
        },
        Some(other) => {
            eprintln!("usage: billstack-openapi [--check | -] (not {other:?})");
            ExitCode::from(2)
        }
    }
}

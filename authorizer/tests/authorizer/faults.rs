//! Fault injection: a loopback "DynamoDB" that hangs, drops connections or
//! throttles. The authorizer must fail closed within its timeout and never
//! allow; JWTs keep working.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::*;

#[derive(Clone, Copy, Debug)]
enum Fault {
    Hang,
    Drop,
    Throttle,
}

async fn faulty_dynamodb(fault: Fault) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                match fault {
                    Fault::Drop => drop(socket),
                    Fault::Hang => {
                        let _ = socket.read(&mut buf).await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    Fault::Throttle => {
                        let _ = socket.read(&mut buf).await;
                        let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"Rate exceeded"}"#;
                        let response = format!(
                            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

/// An authorizer whose store goes through `fault`, with the production
/// timeouts and retries; returns the worst decision time seen.
async fn assert_fails_closed(fault: Fault) -> Duration {
    let jwks = JwksServer::start(JWKS).await;
    let (live, _) = shared::testing::fresh_store_with(shared::testing::fresh_config(5)).await;
    let pat = issue_pat(
        &live,
        "user-faults",
        shared::testing::default_scopes(),
        T0 + 600,
    )
    .await;
    let endpoint = faulty_dynamodb(fault).await;
    let (client, counter) = shared::testing::client_with(
        &endpoint,
        Some(authorizer::dynamodb_timeouts()),
        Some(authorizer::dynamodb_retries()),
    );
    let mut builder = HarnessBuilder::new(&jwks.url);
    builder.store = Some((
        shared::store::TokenStore::new(client, live.config().clone()),
        counter,
    ));
    let h = builder.build().await;
    let mut worst = Duration::ZERO;
    for _ in 0..3 {
        let started = Instant::now();
        let result = h.decide(Some(&bearer(pat.expose()))).await;
        worst = worst.max(started.elapsed());
        assert_eq!(
            result.err(),
            Some(authorizer::AuthError::Internal),
            "{fault:?}"
        );
    }
    assert!(
        worst < Duration::from_secs(3),
        "{fault:?}: a decision took {worst:?}"
    );
    // The JWT path does not depend on DynamoDB and keeps working.
    assert!(
        h.decide(Some(&bearer(&sign(&access_claims()))))
            .await
            .is_ok()
    );
    println!("fault {fault:?}: fails closed, worst-case decision {worst:?}");
    worst
}

#[tokio::test]
async fn a_slow_dynamodb_fails_closed_within_the_timeout() {
    let worst = assert_fails_closed(Fault::Hang).await;
    assert!(
        worst >= Duration::from_millis(700),
        "the timeout, not luck, ended the call"
    );
}

#[tokio::test]
async fn a_throttling_dynamodb_fails_closed() {
    assert_fails_closed(Fault::Throttle).await;
}

#[tokio::test]
async fn a_dropping_dynamodb_fails_closed() {
    assert_fails_closed(Fault::Drop).await;
}

use super::*;

#[test]
fn encodes_counters_and_deadlines() {
    let metrics = Metrics::new();
    metrics.observe_reconcile("partner", Duration::from_millis(3), false);
    metrics.observe_reconcile("partner", Duration::from_millis(3), true);
    let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    metrics.set_next_deadline("ns", "contoso", Some(at));
    let text = metrics.encode();
    assert!(
        text.contains(r#"partner_operator_reconciliations_total{controller="partner"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"partner_operator_reconcile_errors_total{controller="partner"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"partner_operator_partner_next_deadline_timestamp_seconds{namespace="ns",name="contoso"} 1800000000.0"#),
        "{text}"
    );
    metrics.set_next_deadline("ns", "contoso", None);
    assert!(!metrics.encode().contains("contoso"));
}

#[test]
fn a_trial_end_moves_to_its_new_labels_and_goes_with_the_trial() {
    let metrics = Metrics::new();
    let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    metrics.set_trial_end("ns", "contoso", Some(("northwind", true, at)));
    let series = |auto: &str| {
        format!(
            r#"partner_operator_partner_trial_end_timestamp_seconds{{namespace="ns",name="contoso",distributor="northwind",auto_upgrade="{auto}"}} 1800000000.0"#
        )
    };
    assert!(metrics.encode().contains(&series("true")));
    // Automatic upgrade turned off: one series, under the new labels.
    metrics.set_trial_end("ns", "contoso", Some(("northwind", false, at)));
    let text = metrics.encode();
    assert!(text.contains(&series("false")), "{text}");
    assert!(!text.contains(&series("true")), "{text}");
    // Converted: no trial, no series.
    metrics.set_trial_end("ns", "contoso", None);
    assert!(!metrics.encode().contains("contoso"));
}

/// `with_a_series_each` reaches every metric registered in this file.
#[test]
fn a_series_each_shows_every_registered_metric() {
    let registrations = include_str!("metrics.rs")
        .matches(concat!("self.registry", ".register("))
        .count();
    let text = Metrics::with_a_series_each().encode();
    assert_eq!(text.matches("# TYPE ").count(), registrations, "{text}");
}

#[tokio::test]
async fn readyz_follows_readiness() {
    let readiness = Readiness::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(Arc::new(Metrics::new()), readiness.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let status = |path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        response.lines().next().unwrap().to_string()
    };
    assert!(status("/healthz").await.contains("200"));
    assert!(status("/readyz").await.contains("503"));
    readiness.set_ready(true);
    assert!(status("/readyz").await.contains("200"));
    assert!(status("/metrics").await.contains("200"));
}

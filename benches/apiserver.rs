//! The sandbox API server's own capacity: `cargo bench --bench apiserver`.
//!
//! Creates `OBJECTS` (10,000) small ConfigMaps, then merge-patches each once, from 64 requests
//! in flight, while three watchers read every event and one deliberately slow watcher reads one
//! event every 50 ms. Prints one line per figure: creates/s, patches/s, watch events/s
//! delivered, whether the slow watcher was dropped (as kube-apiserver drops a watcher that
//! falls too far behind) rather than holding writers back, and the process's peak RSS (server
//! and clients together).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use partner_sandbox::apiserver::ApiServer;
use serde_json::json;

const NAMESPACES: usize = 10;
const IN_FLIGHT: usize = 64;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn figure(name: &str, value: f64, unit: &str, target: &str) {
    println!("{name:<32} {value:>12.1} {unit:<10} target {target}");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let objects: usize = std::env::var("OBJECTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    println!(
        "API server benchmark: {objects} ConfigMaps, {IN_FLIGHT} requests in flight, 3 watchers and 1 slow watcher"
    );
    let server = ApiServer::start("127.0.0.1:0".parse().unwrap(), Utc::now)
        .await
        .unwrap();
    let client = server.client();
    for n in 0..NAMESPACES {
        let ns: Namespace =
            serde_json::from_value(json!({"metadata": {"name": format!("ns{n}")}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap();
    }
    let all: Api<ConfigMap> = Api::all(client.clone());

    // Watchers that keep up, counting events.
    let delivered = Arc::new(AtomicU64::new(0));
    for _ in 0..3 {
        let (all, delivered) = (all.clone(), delivered.clone());
        tokio::spawn(async move {
            let stream = kube::runtime::watcher(all, Default::default());
            futures::pin_mut!(stream);
            while let Ok(Some(_)) = stream.try_next().await {
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    // A watcher that reads slowly: the server must drop it, not wait for it.
    let slow_dropped = Arc::new(AtomicBool::new(false));
    // Once the writes are done the slow watcher reads at full speed, to find out whether its
    // stream ends (dropped by the server) before the last event.
    let hurry = Arc::new(AtomicBool::new(false));
    {
        let (all, dropped, hurry) = (all.clone(), slow_dropped.clone(), hurry.clone());
        tokio::spawn(async move {
            let mut stream = all
                .watch(&WatchParams::default(), "0")
                .await
                .unwrap()
                .boxed();
            loop {
                match stream.next().await {
                    Some(Ok(WatchEvent::Error(_))) | Some(Err(_)) | None => {
                        dropped.store(true, Ordering::Relaxed);
                        return;
                    }
                    Some(Ok(_)) if !hurry.load(Ordering::Relaxed) => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Some(Ok(_)) => {}
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    let writes_started = Instant::now();
    let started = Instant::now();
    futures::stream::iter(0..objects)
        .map(|i| {
            let api =
                Api::<ConfigMap>::namespaced(client.clone(), &format!("ns{}", i % NAMESPACES));
            async move {
                let cm: ConfigMap = serde_json::from_value(json!({
                    "metadata": {"name": format!("cm{i}"), "labels": {"bench": "yes"}},
                    "data": {"tenantId": format!("{i:08x}"), "level": "Trial"},
                }))
                .unwrap();
                api.create(&PostParams::default(), &cm).await.unwrap();
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
    let creates = objects as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    futures::stream::iter(0..objects)
        .map(|i| {
            let api =
                Api::<ConfigMap>::namespaced(client.clone(), &format!("ns{}", i % NAMESPACES));
            async move {
                api.patch(
                    &format!("cm{i}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"data": {"level": "Production"}})),
                )
                .await
                .unwrap();
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
    let patch_time = started.elapsed().as_secs_f64();
    let patches = objects as f64 / patch_time;

    // Every write reaches each of the three watchers.
    let expected = 3 * 2 * objects as u64;
    let watch_started = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected
        && watch_started.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let events = delivered.load(Ordering::Relaxed) as f64;
    hurry.store(true, Ordering::Relaxed);
    let hurried = Instant::now();
    while !slow_dropped.load(Ordering::Relaxed) && hurried.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    figure("creates/s", creates, "writes/s", ">= 5000");
    figure("patches/s", patches, "writes/s", ">= 5000");
    figure(
        "watch events/s delivered",
        events / writes_started.elapsed().as_secs_f64(),
        "events/s",
        "-",
    );
    println!(
        "{:<32} {:>12} {:<10} target yes",
        "slow watcher dropped",
        if slow_dropped.load(Ordering::Relaxed) {
            "yes"
        } else {
            "no"
        },
        ""
    );
    figure("peak RSS (server + clients)", peak_rss_mib(), "MiB", "-");
    server.shutdown().await;
}

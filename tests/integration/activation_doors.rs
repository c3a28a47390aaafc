//! The activation service is the one door anyone can knock on: what knocking can cost the
//! process. The operator runs as users run it (`partner-operator sandbox`, a subprocess), so the
//! checks read the process itself: its resident memory (`/proc/PID/status`) and, with its
//! descriptor limit set as a pod's commonly is, whether the rest of it keeps working.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use support::process::{Sandbox, examples, stdout};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

crate::on_both_servers_blocking!(slow_connections_leave_reconciliation_and_email_working);
crate::on_both_servers!(a_forged_tenant_activates_nobody);

/// A sandbox whose activation service listens on a port of the test's choosing.
fn sandbox_on(server: Server) -> (Sandbox, SocketAddr) {
    let port = support::metrics::free_port().port();
    let sandbox = Sandbox::start_on(server, &["--activation-port", &port.to_string()]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    eventually_blocking(
        "the activation service listening",
        Patience::SANDBOX_START,
        || std::net::TcpStream::connect(addr).is_ok(),
    );
    (sandbox, addr)
}

/// A field of `/proc/PID/status`, in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// One request carrying a tenant id of `size` bytes: in the query of a GET, in a form's query
/// and in the JSON body of the API, in turn, from one of two client addresses. Whatever the server answers (or however it ends
/// the connection), returns the status line's code, or 0 for a connection it closed.
async fn hostile_request(addr: SocketAddr, n: usize, size: usize) -> u16 {
    // A new id each time: each would be a new key of a limiter that kept what it was given.
    let id = format!("{n:08}{}", "a".repeat(size));
    let token = "0".repeat(64);
    let raw = match n % 3 {
        0 => format!("GET /activate?tenant={id}&token={token} HTTP/1.1\r\nHost: x\r\n\r\n"),
        1 => format!(
            "POST /activate?tenant={id}&token={token} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        ),
        _ => {
            let body = format!(r#"{{"tenant":"{id}","token":"{token}"}}"#);
            format!(
                "POST /v1/activations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        }
    };
    // Two clients (loopback has room for as many addresses as wanted).
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    let from = SocketAddr::from(([127, 0, 0, 2 + (n % 2) as u8], 0));
    socket.bind(from).unwrap();
    let Ok(mut stream) = socket.connect(addr).await else {
        return 0;
    };
    // The server may answer and close before it has read everything: a failed write is its
    // refusal, the answer (if any) is still there to read.
    let _ = stream.write_all(raw.as_bytes()).await;
    let mut head = [0u8; 12];
    match stream.read_exact(&mut head).await {
        Ok(_) => std::str::from_utf8(&head[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// Ten thousand requests with megabyte tenant ids (the attack that took the operator from 22 to
/// 155 MiB, and never gave it back) leave its resident memory within 10 MiB of where it was.
/// No API server is involved (nothing malformed reaches one): the embedded one only.
#[test]
fn megabyte_ids_leave_the_memory_where_it_was() {
    let (sandbox, addr) = sandbox_on(Server::Sandbox);
    let pid = sandbox.child.id();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let send = |count: usize| {
        runtime.block_on(async {
            let next = Arc::new(AtomicUsize::new(0));
            let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
            let workers: Vec<_> = (0..16)
                .map(|_| {
                    let (next, answers) = (next.clone(), answers.clone());
                    tokio::spawn(async move {
                        loop {
                            let n = next.fetch_add(1, Ordering::Relaxed);
                            if n >= count {
                                return;
                            }
                            let status = hostile_request(addr, n, 1 << 20).await;
                            answers.lock().unwrap().push(status);
                        }
                    })
                })
                .collect();
            for worker in workers {
                worker.await.unwrap();
            }
            Arc::try_unwrap(answers).unwrap().into_inner().unwrap()
        })
    };
    // Warm up (the allocator's pools, the first connections) with requests that count against
    // nothing, then measure.
    runtime.block_on(async {
        for _ in 0..300 {
            let ok = support::http::request(addr, "GET", "/healthz", &[], "text/plain", "").await;
            assert_eq!(ok.status, 200);
        }
    });
    let before = status_kb(pid, "VmRSS:");
    let answers = send(10_000);
    let after = status_kb(pid, "VmRSS:");
    eprintln!("VmRSS before {before} kB, after {after} kB");
    // None was taken for a tenant: refused for its size, or for the client's failures.
    assert!(
        answers
            .iter()
            .all(|s| matches!(s, 0 | 404 | 413 | 414 | 429 | 431)),
        "{:?}",
        answers
            .iter()
            .filter(|s| !matches!(s, 0 | 404 | 413 | 414 | 429 | 431))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        after <= before + 10 * 1024,
        "resident memory grew from {before} kB to {after} kB"
    );
    // And it still answers.
    let ok = runtime.block_on(support::http::request(
        addr,
        "GET",
        "/healthz",
        &[],
        "text/plain",
        "",
    ));
    assert_eq!(ok.status, 200);
}

/// Sets `pid`'s limit of open descriptors (soft and hard).
fn limit_descriptors(pid: u32, limit: u64) {
    let new = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: prlimit reads `new` and writes nothing (no old limit asked for).
    let done = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(done, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// Room in the test process itself for its two thousand client sockets.
fn raise_own_descriptor_limit(to: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write the struct given, nothing else.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_cur.max(to.min(limit.rlim_max));
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// Two thousand clients that each send a request's head one byte at a time, reconnecting when
/// the server hangs up, until `stop`. Counts the connections made.
fn slow_clients(
    runtime: &tokio::runtime::Runtime,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    connected: Arc<AtomicUsize>,
) {
    const HEAD: &[u8] = b"GET /activate?tenant=6f1c2d3e-4f5a-5b6c-8d7e-9f0a1b2c3d4e HTTP/1.1\r\n";
    for _ in 0..2_000 {
        let (stop, connected) = (stop.clone(), connected.clone());
        runtime.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let Ok(Ok(mut stream)) =
                    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
                else {
                    continue;
                };
                connected.fetch_add(1, Ordering::Relaxed);
                for byte in HEAD.iter().cycle() {
                    if stop.load(Ordering::Relaxed) || stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    // Real time on purpose: a trickle, a byte a second.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }
}

/// Two thousand slow clients on the activation port, with the process's descriptors limited to
/// 1,024 (a common pod default): the operator still provisions the examples' Partners, and
/// their activation emails arrive; its API server and SMTP server (in the same process) keep
/// answering. Without a connection cap, the slow clients took every descriptor and the rest of
/// the process could open none.
fn slow_connections_leave_reconciliation_and_email_working(server: Server) {
    raise_own_descriptor_limit(8192);
    let (sandbox, addr) = sandbox_on(server);
    limit_descriptors(sandbox.child.id(), 1024);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    slow_clients(&runtime, addr, stop.clone(), connected.clone());
    eventually_blocking("a thousand slow connections", Patience::RECONCILE, || {
        connected.load(Ordering::Relaxed) >= 1_000
    });

    let applied = sandbox.kubectl(&[
        "apply",
        "--request-timeout=60s",
        "-f",
        &examples().to_string_lossy(),
    ]);
    stdout(&applied);
    stdout(&sandbox.kubectl(&[
        "wait",
        "--request-timeout=120s",
        "--for=condition=Ready",
        "partners",
        "--all",
        "-n",
        "northwind-partners",
        "--timeout=120s",
    ]));
    let outbox = sandbox.dir.path().join("outbox");
    eventually_blocking(
        "the three activation emails in the outbox",
        Patience::WALKTHROUGH,
        || {
            let sent = std::fs::read_dir(&outbox)
                .map(|dir| {
                    dir.filter_map(Result::ok)
                        .filter(|e| e.file_name().to_string_lossy().ends_with("-activation.eml"))
                        .count()
                })
                .unwrap_or(0);
            if sent >= 3 { Ok(()) } else { Err(sent) }
        },
    );
    // The attack went on throughout: the service holds its whole cap of slow connections (as
    // one batch times out the next is accepted from the backlog), the rest of the process its
    // own descriptors, under the limit.
    let descriptors = || {
        std::fs::read_dir(format!("/proc/{}/fd", sandbox.child.id()))
            .unwrap()
            .count()
    };
    eventually_blocking(
        "the cap of slow connections held",
        Patience::RECONCILE,
        || {
            let open = descriptors();
            if open >= 512 { Ok(()) } else { Err(open) }
        },
    );
    assert!(descriptors() < 1024);
    stop.store(true, Ordering::Relaxed);
    runtime.shutdown_background();
    let health = tokio::runtime::Runtime::new().unwrap().block_on(async {
        within(Patience::RECONCILE, || async {
            let response = tokio::time::timeout(
                Duration::from_secs(5),
                support::http::request(addr, "GET", "/healthz", &[], "text/plain", ""),
            )
            .await;
            match response {
                Ok(r) if r.status == 200 => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    });
    assert!(health.is_ok(), "{health:?}");
}

/// A connection that says nothing is closed (the header timeout, which also bounds a kept-alive
/// connection's wait for its next request), and a body that never comes ends in 408.
#[test]
fn idle_and_stalled_connections_are_let_go() {
    let (_sandbox, addr) = sandbox_on(Server::Sandbox);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let idle = TcpStream::connect(addr).await.unwrap();
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(
                b"POST /v1/activations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
            )
            .await
            .unwrap();
        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let read_all = |mut stream: TcpStream| async move {
            let mut all = Vec::new();
            let read = tokio::time::timeout(
                Patience::RECONCILE.limit,
                stream.read_to_end(&mut all),
            )
            .await;
            assert!(read.is_ok(), "still open: {}", String::from_utf8_lossy(&all));
            String::from_utf8_lossy(&all).into_owned()
        };
        assert_eq!(read_all(idle).await, "", "closed without a word");
        let answer = read_all(stalled).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        // Answered, then kept alive with nothing more to say: closed too.
        let answer = read_all(kept).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    });
}

/// `/metrics`, `/healthz` and `/readyz` are reachable without credentials too (by the
/// cluster's scrapers and probes, and by anyone the pod's network lets in): the same bounds
/// hold there, so a connection that says nothing is closed rather than kept for ever.
#[test]
fn the_metrics_door_lets_idle_connections_go() {
    let metrics = support::metrics::free_port();
    let _sandbox = Sandbox::start_on(Server::Sandbox, &["--metrics-addr", &metrics.to_string()]);
    eventually_blocking("/metrics listening", Patience::SANDBOX_START, || {
        std::net::TcpStream::connect(metrics).is_ok()
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut idle = TcpStream::connect(metrics).await.unwrap();
        let mut all = Vec::new();
        let read =
            tokio::time::timeout(Patience::RECONCILE.limit, idle.read_to_end(&mut all)).await;
        assert!(read.is_ok(), "an idle connection to /metrics is still open");
        assert!(all.is_empty(), "{}", String::from_utf8_lossy(&all));
    });
}

/// A namespace someone else made to look like a Partner's tenant (its name, the ownership and
/// tenant-id labels, the Partner's annotations, an `activation` Secret holding the hash of a
/// token of their own, and the Partner's `status.tenant` written by a status writer) activates
/// nothing: without the operator's ownership proof the service does not believe it. Admission
/// policies would refuse the label; this holds where they do not run.
async fn a_forged_tenant_activates_nobody(server: Server) {
    use k8s_openapi::api::core::v1::{Namespace, Secret};
    use kube::api::{Api, Patch, PatchParams, PostParams};
    use partner_operator::tenant::{
        OWNER_UID_LABEL, PARTNER_NAME_LABEL, PARTNER_NAMESPACE_LABEL, TENANT_ID_LABEL, tenant_id,
        tenant_namespace_of,
    };
    use serde_json::json;
    use sha2::{Digest, Sha256};

    let (h, addr) = support::activation::start(server, |_| {}).await;

    // The victim: a Partner whose namespace no Distributor binds yet.
    h.namespace("tailspin-partners", &[]).await;
    h.apply(partner("tailspin-partners", "victim", "tailspin"))
        .await;
    let victim = h
        .wait_partner("tailspin-partners", "victim", "seen", |p| {
            p.status.is_some()
        })
        .await;
    let (name, id) = (tenant_namespace_of(&victim), tenant_id(&uid(&victim)));
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {
        "name": name,
        "labels": {OWNER_UID_LABEL: uid(&victim), TENANT_ID_LABEL: id},
        "annotations": {PARTNER_NAMESPACE_LABEL: "tailspin-partners", PARTNER_NAME_LABEL: "victim"},
    }}))
    .unwrap();
    Api::<Namespace>::all(h.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let token = "7".repeat(64);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "activation", "namespace": name},
        "stringData": {
            "tokenSha256": hex::encode(Sha256::digest(token.as_bytes())),
            "expiresAt": "2999-01-01T00:00:00Z",
        },
    }))
    .unwrap();
    Api::<Secret>::namespaced(h.client.clone(), &name)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    h.partners("tailspin-partners")
        .patch_status(
            "victim",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"tenant": {
                "id": id, "namespace": name, "provisionedAt": "2026-01-01T00:00:00Z",
            }}})),
        )
        .await
        .unwrap();

    // A real tenant made after the forgery: once its link works, the service's directory has
    // seen the forged namespace too (one watch, in the order of the writes).
    h.northwind(true).await;
    h.apply(partner("northwind-partners", "contoso", "northwind"))
        .await;
    h.wait_partner("northwind-partners", "contoso", "Ready", is_ready)
        .await;
    h.wait_emails(1).await;
    let email = h
        .emails_of("activation")
        .pop()
        .expect("contoso's activation email");
    let (_, tenant, token_of_contoso) = support::activation::link(&email);
    let real = support::http::post_json(
        addr,
        "/v1/activations",
        &json!({"tenant": tenant, "token": token_of_contoso}),
    )
    .await;
    assert_eq!(real.status, 200, "{real:?}");

    let forged = support::http::post_json(
        addr,
        "/v1/activations",
        &json!({"tenant": id, "token": token}),
    )
    .await;
    assert_eq!(forged.status, 404, "{forged:?}");
    let victim = h.partners("tailspin-partners").get("victim").await.unwrap();
    let activated = victim
        .status
        .and_then(|s| s.activation)
        .and_then(|a| a.activated_at);
    assert!(
        activated.is_none(),
        "the victim was activated at {activated:?}"
    );
}

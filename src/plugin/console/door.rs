//! Who may use the console. It acts with the user's credentials, so every request must prove
//! it comes from the user's own browser, on the page the console served:
//!
//! - **Host**: the `Host` header must be the bound address and port as the URL has it. A web
//!   page elsewhere cannot rebind a name of its own to 127.0.0.1 and read the console as its
//!   own origin (DNS rebinding): its requests carry its own name.
//! - **Secret**: the printed URL holds a random secret, made anew each run, that works once.
//!   Opening it sets a session cookie (`HttpOnly`: no script reads it; `SameSite=Strict`: no
//!   other site's page sends it) and redirects to the page without the secret, so it leaves
//!   the address bar and the history. Every other request needs the cookie. The URL opened
//!   again in the browser that has the cookie just goes to the page; anywhere else it is
//!   refused, so a URL seen later (scrollback, shell history, a shared screen) opens nothing.
//! - **CSRF**: a write (any method but GET and HEAD) needs the page's token in the
//!   `X-CSRF-Token` header, which another origin cannot set without a CORS preflight the
//!   console never grants, and an `Origin`, when sent, that is the console's own.
//!
//! Secrets are compared in constant time. Every answer forbids framing, caching and referrers,
//! and its Content-Security-Policy allows the console's own script and style only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::Console;

/// The header a write carries its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The query parameter of the printed URL.
pub const SECRET_PARAM: &str = "token";

/// The console's secrets and where it is bound.
pub struct Door {
    /// `127.0.0.1:8484`, as the URL and the Host header write it.
    host: String,
    secret: String,
    /// Whether the secret was exchanged for the cookie already.
    spent: AtomicBool,
    session: String,
    csrf: String,
}

fn random_hex() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Door {
    pub fn new(bound: SocketAddr) -> Self {
        Self {
            host: bound.to_string(),
            secret: random_hex(),
            spent: AtomicBool::new(false),
            session: random_hex(),
            csrf: random_hex(),
        }
    }

    /// The URL to print: the console's address with its secret.
    pub fn url(&self) -> String {
        format!("http://{}/?{SECRET_PARAM}={}", self.host, self.secret)
    }

    /// The token the pages carry for their writes.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// The session cookie's name: one per port, as cookies do not tell ports apart.
    fn cookie_name(&self) -> String {
        let port = self.host.rsplit(':').next().unwrap_or_default();
        format!("partner_console_{port}")
    }

    fn host_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h == self.host)
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|h| h.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(key, value)| key == name && same(value, &self.session))
    }

    fn write_allowed(&self, headers: &HeaderMap) -> bool {
        let token_ok = headers
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|t| same(t, &self.csrf));
        let origin_ok = headers
            .get(header::ORIGIN)
            .and_then(|h| h.to_str().ok())
            .is_none_or(|o| o == format!("http://{}", self.host));
        token_ok && origin_ok
    }

    /// The secret of the query, if the query holds one.
    fn secret_in(query: Option<&str>) -> Option<String> {
        url::form_urlencoded::parse(query?.as_bytes())
            .find(|(key, _)| key == SECRET_PARAM)
            .map(|(_, value)| value.into_owned())
    }

    /// Whether `secret` is the secret, unspent; it is spent by this call.
    fn spend(&self, secret: &str) -> bool {
        same(secret, &self.secret) && !self.spent.swap(true, Ordering::SeqCst)
    }

    /// The answer to the printed URL: the cookie, and the page without the secret.
    fn welcome(&self) -> Response {
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie_name(),
            self.session
        );
        let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        response.headers_mut().insert(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).expect("hex is a header value"),
        );
        response
    }
}

/// A refusal: plain text saying what to do instead.
fn refuse(why: String) -> Response {
    (StatusCode::FORBIDDEN, format!("{why}\n")).into_response()
}

/// The check before every route (see the module's documentation).
pub async fn guard(State(console): State<Arc<Console>>, request: Request, next: Next) -> Response {
    let door = &console.door;
    let headers = request.headers();
    if !door.host_ok(headers) {
        return refuse(format!(
            "refused: the Host header must be {} (the console answers its own address only, \
             against DNS rebinding); open the URL `kubectl partner console` printed",
            door.host
        ));
    }
    if let Some(secret) = Door::secret_in(request.uri().query()) {
        return if request.method() != Method::GET {
            refuse("refused: the console's URL is for a browser to open".into())
        } else if door.has_session(headers) {
            // This browser is in already (the URL opened twice, or prerendered).
            (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response()
        } else if door.spend(&secret) {
            door.welcome()
        } else {
            refuse(
                "refused: the console's URL works once, in one browser, and this one was opened \
                 already (or is not this run's); restart `kubectl partner console` for a new one"
                    .into(),
            )
        };
    }
    if !door.has_session(headers) {
        return refuse(
            "refused: open the URL `kubectl partner console` printed (with its token) first".into(),
        );
    }
    let reads = [Method::GET, Method::HEAD];
    if !reads.contains(request.method()) && !door.write_allowed(headers) {
        return refuse(
            "refused: a change needs the page's CSRF token (X-CSRF-Token) from the console's own \
             origin; reload the page and try again"
                .into(),
        );
    }
    let mut response = next.run(request).await;
    harden(response.headers_mut());
    response
}

/// Headers every answer carries.
fn harden(headers: &mut HeaderMap) {
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn door() -> Door {
        Door::new("127.0.0.1:8484".parse().unwrap())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn the_host_must_be_the_bound_address() {
        let d = door();
        assert!(d.host_ok(&headers(&[("host", "127.0.0.1:8484")])));
        for foreign in ["evil.example:8484", "localhost:8484", "127.0.0.1:8485", ""] {
            assert!(!d.host_ok(&headers(&[("host", foreign)])), "{foreign}");
        }
        assert!(!d.host_ok(&headers(&[])));
    }

    #[test]
    fn the_session_cookie_and_the_csrf_token_are_checked() {
        let d = door();
        let cookie = format!("a=b; partner_console_8484={}", d.session);
        assert!(d.has_session(&headers(&[("cookie", &cookie)])));
        assert!(!d.has_session(&headers(&[("cookie", "partner_console_8484=x")])));
        assert!(!d.has_session(&headers(&[(
            "cookie",
            &format!("partner_console_9999={}", d.session)
        )])));
        assert!(d.write_allowed(&headers(&[(CSRF_HEADER, &d.csrf)])));
        assert!(d.write_allowed(&headers(&[
            (CSRF_HEADER, &d.csrf),
            ("origin", "http://127.0.0.1:8484")
        ])));
        assert!(!d.write_allowed(&headers(&[
            (CSRF_HEADER, &d.csrf),
            ("origin", "http://evil.example")
        ])));
        assert!(!d.write_allowed(&headers(&[(CSRF_HEADER, "nope")])));
        assert!(!d.write_allowed(&headers(&[])));
    }

    #[test]
    fn the_url_carries_the_secret_and_the_welcome_sets_a_strict_cookie() {
        let d = door();
        let url = d.url();
        let query = url.split_once('?').unwrap().1;
        assert_eq!(Door::secret_in(Some(query)).unwrap(), d.secret);
        assert!(!d.spend("0000"));
        assert!(d.spend(&d.secret.clone()), "the secret works once");
        assert!(!d.spend(&d.secret.clone()));
        let welcome = d.welcome();
        assert_eq!(welcome.status(), StatusCode::SEE_OTHER);
        let cookie = welcome.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
        assert!(!cookie.contains(&d.secret), "the cookie is not the secret");
    }
}

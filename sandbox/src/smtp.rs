//! An SMTP server on loopback that keeps every message it accepts.
//!
//! It speaks enough of RFC 5321 for any client (EHLO/HELO, MAIL, RCPT, DATA with
//! dot-unstuffing, RSET, NOOP, VRFY, QUIT; AUTH PLAIN and LOGIN accept any password), so the
//! operator's real mailer is exercised over a real socket. Each message is kept in memory for
//! tests and, given an outbox directory, written there as `NNNN-<event>.eml` for people
//! trying the sandbox, with `NNNN-<event>.txt` beside it: the headers that matter and the
//! decoded text body, to read with `cat` (links whole, no quoted-printable). TLS is not
//! offered: a client must be told to allow plaintext.
//!
//! Faults a mail provider has can be switched on: the whole server down (421), a recipient
//! refused at RCPT with a chosen code, a server that accepts connections and never answers, and
//! one that answers every command slowly, and one that closes the connection after each message.
//! It counts the connections it accepted, those open and the most open at once.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use mail_parser::{MessageParser, MimeHeaders};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

/// Largest message accepted; bigger ones get 552 (advertised as `SIZE`).
const MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
/// Longest command line; longer ones get 500 (RFC 5321 allows 512 octets).
const MAX_LINE_BYTES: usize = 4096;
/// An idle client is dropped after this long, as real servers do.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// A message the server accepted.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedEmail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`) that were accepted.
    pub to: Vec<String>,
    /// The `Message-ID` header, with its angle brackets.
    pub message_id: Option<String>,
    /// The `Subject` header, decoded.
    pub subject: Option<String>,
    /// The `X-Partner-Operator-Event` header.
    pub event: Option<String>,
    /// The user the client authenticated as, if it did.
    pub auth_user: Option<String>,
    /// The message as received, after dot-unstuffing.
    pub raw: Vec<u8>,
}

impl fmt::Debug for ReceivedEmail {
    /// The raw message may hold an activation link: it is left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedEmail")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("message_id", &self.message_id)
            .field("subject", &self.subject)
            .field("event", &self.event)
            .field("auth_user", &self.auth_user)
            .field("raw_bytes", &self.raw.len())
            .finish()
    }
}

impl ReceivedEmail {
    fn new(from: String, to: Vec<String>, auth_user: Option<String>, raw: Vec<u8>) -> Self {
        let parsed = MessageParser::default().parse(&raw);
        let parsed = parsed.as_ref();
        Self {
            message_id: parsed
                .and_then(|m| m.message_id())
                .map(|id| format!("<{id}>")),
            subject: parsed.and_then(|m| m.subject()).map(str::to_owned),
            event: parsed
                .and_then(|m| m.header_raw("X-Partner-Operator-Event"))
                .map(|v| v.trim().to_owned()),
            from,
            to,
            auth_user,
            raw,
        }
    }

    /// `type/subtype` of the message, e.g. `multipart/alternative`.
    pub fn content_type(&self) -> Option<String> {
        let parsed = MessageParser::default().parse(&self.raw)?;
        let ct = parsed.content_type()?;
        Some(match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        })
    }

    /// The decoded `text/plain` part.
    pub fn text_body(&self) -> Option<String> {
        let parsed = MessageParser::default().parse(&self.raw)?;
        let part = parsed.text_body.first().copied()?;
        let part = parsed.part(part)?;
        if !part.is_text() || part.is_text_html() {
            return None;
        }
        part.text_contents().map(str::to_owned)
    }

    /// The decoded `text/html` part.
    pub fn html_body(&self) -> Option<String> {
        let parsed = MessageParser::default().parse(&self.raw)?;
        let part = parsed.html_body.first().copied()?;
        let part = parsed.part(part)?;
        if !part.is_text_html() {
            return None;
        }
        part.text_contents().map(str::to_owned)
    }

    /// The raw value of the header `name` (first occurrence), unfolded.
    pub fn header(&self, name: &str) -> Option<String> {
        let parsed = MessageParser::default().parse(&self.raw)?;
        parsed
            .header_raw(name.to_owned())
            .map(|v| v.replace("\r\n", "").trim().to_owned())
    }
}

/// `wait_for` gave up.
#[derive(Debug, thiserror::Error)]
#[error("expected {expected} messages within {timeout:?}, received {received}")]
pub struct WaitTimeout {
    pub expected: usize,
    pub received: usize,
    pub timeout: Duration,
}

struct Shared {
    messages: Mutex<Vec<ReceivedEmail>>,
    /// Number of messages received, to wake `wait_for`.
    count: watch::Sender<usize>,
    down: AtomicBool,
    /// Lower-cased address -> reply code at RCPT.
    rejected: Mutex<HashMap<String, u16>>,
    /// Messages still to be taken and stored, then left unconfirmed (the connection closed
    /// instead of the final 250).
    unconfirmed: std::sync::atomic::AtomicU32,
    /// Whether an unconfirmed message's connection first hangs (for a minute) before it closes.
    hang: AtomicBool,
    /// Whether new connections are accepted and then never answered.
    silent: AtomicBool,
    /// How long each reply waits, in milliseconds.
    reply_delay_ms: std::sync::atomic::AtomicU64,
    /// Whether the connection is closed after each message accepted.
    one_message_per_connection: AtomicBool,
    /// The connections open, and the most open at once.
    connections: Mutex<Connections>,
    outbox: Option<Outbox>,
}

/// The directory messages are written to, and the number of the last one.
struct Outbox {
    dir: PathBuf,
    last: tokio::sync::Mutex<u32>,
}

impl Outbox {
    /// Continues numbering after the files already there, so a restarted sink never overwrites
    /// what an earlier one received. The directory is made with the first message: an outbox
    /// that exists holds mail.
    fn open(dir: PathBuf) -> io::Result<Self> {
        let mut last = 0;
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => Some(entries),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => return Err(err),
        };
        for entry in entries.into_iter().flatten() {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .split_once('-')
                .filter(|_| name.ends_with(".eml"))
                .and_then(|(n, _)| n.parse::<u32>().ok())
            {
                last = last.max(n);
            }
        }
        Ok(Self {
            dir,
            last: tokio::sync::Mutex::new(last),
        })
    }

    /// Writes the readable `.txt`, then the message whole, each to a temporary name renamed
    /// into place: a reader never sees half a file, and finds the `.txt` once the `.eml` is
    /// there.
    async fn store(&self, event: Option<&str>, raw: &[u8]) -> io::Result<PathBuf> {
        let mut last = self.last.lock().await;
        let n = *last + 1;
        let event: String = event
            .unwrap_or("message")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        tokio::fs::create_dir_all(&self.dir).await?;
        let stem = format!("{n:04}-{event}");
        let write = |name: String, contents: Vec<u8>| async move {
            let tmp = self.dir.join(format!(".{name}.tmp"));
            let path = self.dir.join(name);
            tokio::fs::write(&tmp, contents).await?;
            tokio::fs::rename(&tmp, &path).await?;
            io::Result::Ok(path)
        };
        write(format!("{stem}.txt"), readable(raw).into_bytes()).await?;
        let path = write(format!("{stem}.eml"), raw.to_vec()).await?;
        *last = n;
        Ok(path)
    }
}

/// A message as a person reads it: From, To, Cc, Reply-To (when present), Subject, Date and
/// Message-ID, decoded, then the decoded `text/plain` body (an HTML-only message's text is
/// taken from its HTML).
pub fn readable(raw: &[u8]) -> String {
    let Some(message) = MessageParser::default().parse(raw) else {
        return "(not a message mail-parser can read; see the .eml)\n".into();
    };
    let addresses = |address: Option<&mail_parser::Address<'_>>| {
        address.map(|address| {
            address
                .iter()
                .map(|addr| match (addr.name(), addr.address()) {
                    (Some(name), Some(email)) => format!("{name} <{email}>"),
                    (None, Some(email)) => email.to_owned(),
                    (Some(name), None) => name.to_owned(),
                    (None, None) => String::new(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
    };
    let raw_header = |name: &str| {
        message
            .header_raw(name.to_owned())
            .map(|v| v.replace("\r\n", "").replace('\n', "").trim().to_owned())
    };
    let headers = [
        ("From", addresses(message.from())),
        ("To", addresses(message.to())),
        ("Cc", addresses(message.cc())),
        ("Reply-To", addresses(message.reply_to())),
        ("Subject", message.subject().map(str::to_owned)),
        ("Date", raw_header("Date")),
        (
            "Message-ID",
            message.message_id().map(|id| format!("<{id}>")),
        ),
    ];
    let mut text = String::new();
    for (name, value) in headers {
        if let Some(value) = value {
            text.push_str(&format!("{name}: {value}\n"));
        }
    }
    text.push('\n');
    match message.body_text(0) {
        Some(body) => {
            let body = body.replace("\r\n", "\n");
            text.push_str(&body);
            if !body.ends_with('\n') {
                text.push('\n');
            }
        }
        None => text.push_str("(no text body; see the .eml)\n"),
    }
    text
}

/// A running SMTP server; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl SmtpSink {
    /// Listens on `addr` (port 0 picks a free one), writing messages to `outbox` if given.
    pub async fn start(addr: SocketAddr, outbox: Option<PathBuf>) -> io::Result<Self> {
        let outbox = outbox.map(Outbox::open).transpose()?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            messages: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
            down: AtomicBool::new(false),
            rejected: Mutex::new(HashMap::new()),
            unconfirmed: std::sync::atomic::AtomicU32::new(0),
            hang: AtomicBool::new(false),
            silent: AtomicBool::new(false),
            reply_delay_ms: std::sync::atomic::AtomicU64::new(0),
            one_message_per_connection: AtomicBool::new(false),
            connections: Mutex::default(),
            outbox,
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone())).abort_handle();
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// An `smtp://` URL for this server (plaintext: clients must allow it).
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The outbox directory, if messages are written to one.
    pub fn outbox(&self) -> Option<&Path> {
        self.shared.outbox.as_ref().map(|o| o.dir.as_path())
    }

    /// Every message accepted so far, in order.
    pub fn received(&self) -> Vec<ReceivedEmail> {
        lock(&self.shared.messages).clone()
    }

    /// Waits until at least `count` messages were accepted, then returns all of them.
    pub async fn wait_for(
        &self,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedEmail>, WaitTimeout> {
        let mut changes = self.shared.count.subscribe();
        let reached = tokio::time::timeout(timeout, changes.wait_for(|n| *n >= count)).await;
        match reached {
            Ok(Ok(_)) => Ok(self.received()),
            _ => Err(WaitTimeout {
                expected: count,
                received: *self.shared.count.borrow(),
                timeout,
            }),
        }
    }

    /// While down, new connections are greeted with 421 and closed, and open ones get 421 at
    /// their next command: what a client sees from a provider in maintenance.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Refuses `address` at RCPT with `code` (e.g. 550 for no such mailbox, 450 for try
    /// later). The rest of the transaction goes on, as with a real server.
    pub fn reject_recipient(&self, address: &str, code: u16) {
        lock(&self.shared.rejected).insert(address.to_ascii_lowercase(), code);
    }

    /// Accepts `address` again.
    pub fn accept_recipient(&self, address: &str) {
        lock(&self.shared.rejected).remove(&address.to_ascii_lowercase());
    }

    /// The next `count` messages are stored (they reach the recipient) but never confirmed: the
    /// connection closes where the final `250` would come, as when a server or the network
    /// fails right after the data. The client cannot tell that the message went out.
    pub fn leave_unconfirmed(&self, count: u32) {
        self.shared.hang.store(false, Ordering::SeqCst);
        self.shared.unconfirmed.store(count, Ordering::SeqCst);
    }

    /// While silent, connections are accepted and nothing is answered (not even the greeting),
    /// on new connections and open ones alike: a server that hangs. The replies held back go
    /// out once it speaks again, to whoever still listens.
    pub fn set_silent(&self, silent: bool) {
        self.shared.silent.store(silent, Ordering::SeqCst);
    }

    /// Every reply, the greeting included, waits `delay` first: a slow server.
    pub fn set_reply_delay(&self, delay: Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.shared.reply_delay_ms.store(ms, Ordering::SeqCst);
    }

    /// The most connections that were open at once so far.
    pub fn peak_connections(&self) -> usize {
        lock(&self.shared.connections).peak
    }

    /// The connections accepted so far, closed ones included.
    pub fn accepted_connections(&self) -> u64 {
        lock(&self.shared.connections).next
    }

    /// The connections open now (those the client closed are not).
    pub fn open_connections(&self) -> usize {
        let mut connections = lock(&self.shared.connections);
        connections.forget_closed();
        connections.open.len()
    }

    /// While on, the connection is closed right after each message is confirmed: what a client
    /// sees from a server that takes one message per connection, or drops idle clients early.
    pub fn set_one_message_per_connection(&self, on: bool) {
        self.shared
            .one_message_per_connection
            .store(on, Ordering::SeqCst);
    }

    /// As [`SmtpSink::leave_unconfirmed`], but the connection hangs after the data, saying
    /// nothing for a minute before it closes: the client's timeout decides.
    pub fn hang_unconfirmed(&self, count: u32) {
        self.shared.hang.store(true, Ordering::SeqCst);
        self.shared.unconfirmed.store(count, Ordering::SeqCst);
    }
}

/// Locks a mutex, carrying on past a panic of another holder: the data stays usable.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the sessions here means aborting this task ends them all.
    let mut sessions = JoinSet::new();
    loop {
        while sessions.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors and the like: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let shared = shared.clone();
        sessions.spawn(async move {
            let _open = OpenConnection::count(&shared, &stream);
            if let Err(Stop::Io(err)) = Session::new(stream, shared.clone()).run().await {
                tracing::debug!(error = %err, "SMTP session ended");
            }
        });
    }
}

/// The reason a session ends early.
enum Stop {
    Quit,
    Io(io::Error),
}

impl From<io::Error> for Stop {
    fn from(err: io::Error) -> Self {
        Self::Io(err)
    }
}

/// The connections open, each with a second handle on its socket to ask the kernel whether the
/// client closed it: a session notices that only when it next reads, which may come after the
/// client's next connection is accepted, so counting sessions would count a closed connection.
#[derive(Default)]
struct Connections {
    open: HashMap<u64, std::net::TcpStream>,
    next: u64,
    peak: usize,
}

impl Connections {
    /// Those the client has closed (the kernel has its FIN) are not open any more.
    fn forget_closed(&mut self) {
        self.open.retain(|_, socket| {
            let mut byte = [0u8; 1];
            match socket.peek(&mut byte) {
                Ok(0) => false,
                Ok(_) => true,
                Err(err) => err.kind() == io::ErrorKind::WouldBlock,
            }
        });
    }
}

/// One open connection, counted while it lives.
struct OpenConnection {
    shared: Arc<Shared>,
    id: u64,
}

impl OpenConnection {
    fn count(shared: &Arc<Shared>, stream: &TcpStream) -> Self {
        use std::os::fd::AsFd;
        let mut connections = lock(&shared.connections);
        connections.forget_closed();
        let id = connections.next;
        connections.next += 1;
        if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
            connections.open.insert(id, std::net::TcpStream::from(fd));
        }
        connections.peak = connections.peak.max(connections.open.len());
        Self {
            shared: shared.clone(),
            id,
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        lock(&self.shared.connections).open.remove(&self.id);
    }
}

struct Session {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    shared: Arc<Shared>,
    greeted: bool,
    auth_user: Option<String>,
    from: Option<String>,
    to: Vec<String>,
}

impl Session {
    fn new(stream: TcpStream, shared: Arc<Shared>) -> Self {
        let _ = stream.set_nodelay(true);
        let (read, writer) = stream.into_split();
        Self {
            reader: BufReader::new(read),
            writer,
            shared,
            greeted: false,
            auth_user: None,
            from: None,
            to: Vec::new(),
        }
    }

    fn down(&self) -> bool {
        self.shared.down.load(Ordering::SeqCst)
    }

    async fn reply(&mut self, line: &str) -> io::Result<()> {
        while self.shared.silent.load(Ordering::SeqCst) {
            // Silent, but not deaf to a client that gives up: its connection ends here, so
            // the count of open connections is the client's.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                read = self.reader.fill_buf() => {
                    if read.map_or(true, |buf| buf.is_empty()) {
                        return Err(io::Error::new(io::ErrorKind::BrokenPipe, "the client left"));
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        let delay = self.shared.reply_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        // One write per reply: two small writes would meet Nagle's algorithm and the peer's
        // delayed ACK, costing 40 ms a reply.
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
    }

    /// One line without its line ending; `None` at end of input. Over-long lines are
    /// returned cut, flagged by `true`.
    async fn line(&mut self) -> Result<Option<(Vec<u8>, bool)>, Stop> {
        let mut line = Vec::new();
        let mut too_long = false;
        loop {
            let buf = tokio::time::timeout(IDLE_TIMEOUT, self.reader.fill_buf())
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle client"))??;
            if buf.is_empty() {
                return Ok((!line.is_empty()).then_some((line, too_long)));
            }
            let (chunk, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (&buf[..=i], true),
                None => (buf, false),
            };
            let used = chunk.len();
            if line.len() + used <= MAX_MESSAGE_BYTES {
                line.extend_from_slice(chunk);
            } else {
                too_long = true;
            }
            self.reader.consume(used);
            if done {
                while matches!(line.last(), Some(b'\n' | b'\r')) {
                    line.pop();
                }
                return Ok(Some((line, too_long)));
            }
        }
    }

    async fn run(mut self) -> Result<(), Stop> {
        if self.down() {
            self.reply("421 4.3.2 localhost Service not available, closing channel")
                .await?;
            return Ok(());
        }
        self.reply("220 localhost ESMTP partner-operator sandbox")
            .await?;
        loop {
            let Some((line, too_long)) = self.line().await? else {
                return Ok(());
            };
            if self.down() {
                self.reply("421 4.3.2 localhost Service not available, closing channel")
                    .await?;
                return Ok(());
            }
            if too_long || line.len() > MAX_LINE_BYTES {
                self.reply("500 5.5.2 Line too long").await?;
                continue;
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            match self.command(&line).await {
                Ok(()) => {}
                Err(Stop::Quit) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }

    async fn command(&mut self, line: &str) -> Result<(), Stop> {
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        match verb.as_str() {
            "EHLO" => {
                self.reset();
                self.greeted = true;
                self.reply(&format!(
                    "250-localhost greets {arg}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                     250-SIZE {MAX_MESSAGE_BYTES}\r\n250 AUTH PLAIN LOGIN"
                ))
                .await?;
            }
            "HELO" => {
                self.reset();
                self.greeted = true;
                self.reply("250 localhost").await?;
            }
            "MAIL" => self.mail(arg).await?,
            "RCPT" => self.rcpt(arg).await?,
            "DATA" => self.data().await?,
            "AUTH" => self.auth(arg).await?,
            "RSET" => {
                self.reset();
                self.reply("250 2.0.0 OK").await?;
            }
            "NOOP" => self.reply("250 2.0.0 OK").await?,
            "VRFY" => {
                self.reply("252 2.5.0 Cannot verify, but will accept")
                    .await?
            }
            "QUIT" => {
                self.reply("221 2.0.0 Bye").await?;
                return Err(Stop::Quit);
            }
            "STARTTLS" => self.reply("502 5.5.1 STARTTLS not offered").await?,
            _ => self.reply("500 5.5.2 Command not recognized").await?,
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.from = None;
        self.to.clear();
    }

    async fn mail(&mut self, arg: &str) -> Result<(), Stop> {
        if !self.greeted {
            return Ok(self.reply("503 5.5.1 Send EHLO or HELO first").await?);
        }
        if self.from.is_some() {
            return Ok(self.reply("503 5.5.1 Sender already given").await?);
        }
        match path_argument(arg, "FROM:") {
            Some(from) => {
                self.from = Some(from);
                self.reply("250 2.1.0 OK").await?;
            }
            None => self.reply("501 5.5.4 Syntax: MAIL FROM:<address>").await?,
        }
        Ok(())
    }

    async fn rcpt(&mut self, arg: &str) -> Result<(), Stop> {
        if self.from.is_none() {
            return Ok(self.reply("503 5.5.1 Need MAIL before RCPT").await?);
        }
        let Some(to) = path_argument(arg, "TO:").filter(|to| !to.is_empty()) else {
            return Ok(self.reply("501 5.5.4 Syntax: RCPT TO:<address>").await?);
        };
        let refused = lock(&self.shared.rejected)
            .get(&to.to_ascii_lowercase())
            .copied();
        match refused {
            Some(code) if code >= 500 => {
                self.reply(&format!("{code} 5.1.1 <{to}>: Recipient address rejected"))
                    .await?
            }
            Some(code) => {
                self.reply(&format!("{code} 4.2.1 <{to}>: Try again later"))
                    .await?
            }
            None => {
                self.to.push(to);
                self.reply("250 2.1.5 OK").await?;
            }
        }
        Ok(())
    }

    async fn data(&mut self) -> Result<(), Stop> {
        if self.from.is_none() || self.to.is_empty() {
            return Ok(self
                .reply("503 5.5.1 Need MAIL and RCPT before DATA")
                .await?);
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>").await?;
        let mut raw = Vec::new();
        let mut too_big = false;
        loop {
            let Some((line, _)) = self.line().await? else {
                return Ok(());
            };
            if line == b"." {
                break;
            }
            // Dot-unstuffing: the client doubled every leading dot.
            let line = line.strip_prefix(b".").unwrap_or(&line);
            if raw.len() + line.len() + 2 > MAX_MESSAGE_BYTES {
                too_big = true;
                continue;
            }
            raw.extend_from_slice(line);
            raw.extend_from_slice(b"\r\n");
        }
        let from = self.from.take().unwrap_or_default();
        let to = std::mem::take(&mut self.to);
        if too_big {
            return Ok(self.reply("552 5.3.4 Message too big").await?);
        }
        if self.down() {
            return Ok(self
                .reply("421 4.3.2 localhost Service not available, closing channel")
                .await?);
        }
        let email = ReceivedEmail::new(from, to, self.auth_user.clone(), raw);
        if let Some(outbox) = &self.shared.outbox
            && let Err(err) = outbox.store(email.event.as_deref(), &email.raw).await
        {
            tracing::warn!(error = %err, "cannot write to the outbox");
            return Ok(self.reply("451 4.3.0 Cannot store the message").await?);
        }
        let id = email.message_id.clone().unwrap_or_default();
        let count = {
            let mut messages = lock(&self.shared.messages);
            messages.push(email);
            messages.len()
        };
        self.shared.count.send_replace(count);
        let unconfirmed = self
            .shared
            .unconfirmed
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if unconfirmed {
            if self.shared.hang.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
            return Err(Stop::Quit);
        }
        self.reply(&format!("250 2.0.0 OK queued as {id}")).await?;
        if self
            .shared
            .one_message_per_connection
            .load(Ordering::SeqCst)
        {
            return Err(Stop::Quit);
        }
        Ok(())
    }

    /// Accepts any credentials: the sandbox checks that a client authenticates, not who.
    async fn auth(&mut self, arg: &str) -> Result<(), Stop> {
        let (mechanism, initial) = match arg.split_once(' ') {
            Some((m, initial)) => (m.to_ascii_uppercase(), Some(initial.trim().to_owned())),
            None => (arg.to_ascii_uppercase(), None),
        };
        let user = match mechanism.as_str() {
            "PLAIN" => {
                let response = match initial {
                    Some(initial) => initial,
                    None => match self.challenge("").await? {
                        Some(response) => response,
                        None => return Ok(()),
                    },
                };
                // authzid NUL authcid NUL password
                decode(&response).and_then(|plain| {
                    plain
                        .split('\0')
                        .nth(1)
                        .map(str::to_owned)
                        .filter(|_| plain.split('\0').count() == 3)
                })
            }
            "LOGIN" => {
                let user = match initial {
                    Some(initial) => Some(initial),
                    None => self.challenge("VXNlcm5hbWU6").await?,
                };
                let Some(user) = user else { return Ok(()) };
                if self.challenge("UGFzc3dvcmQ6").await?.is_none() {
                    return Ok(());
                }
                decode(&user)
            }
            _ => {
                return Ok(self
                    .reply("504 5.5.4 Unrecognized authentication type")
                    .await?);
            }
        };
        match user {
            Some(user) => {
                self.auth_user = Some(user);
                self.reply("235 2.7.0 Authentication successful").await?;
            }
            None => self.reply("501 5.5.2 Cannot decode response").await?,
        }
        Ok(())
    }

    /// Sends a 334 challenge; `None` when the client cancelled (after replying 501).
    async fn challenge(&mut self, prompt: &str) -> Result<Option<String>, Stop> {
        self.reply(&format!("334 {prompt}")).await?;
        let Some((line, _)) = self.line().await? else {
            return Err(Stop::Quit);
        };
        let line = String::from_utf8_lossy(&line).trim().to_owned();
        if line == "*" {
            self.reply("501 5.7.0 Authentication cancelled").await?;
            return Ok(None);
        }
        Ok(Some(line))
    }
}

fn decode(base64: &str) -> Option<String> {
    let bytes = BASE64.decode(base64.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

/// The address of `FROM:<addr> [params]` / `TO:<addr> [params]`, case-insensitively.
fn path_argument(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let rest = rest.strip_prefix('<')?;
    let end = rest.find('>')?;
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readable_copy_decodes_headers_and_a_quoted_printable_body() {
        let raw = b"From: =?utf-8?q?M=C3=BCller_Onboarding?= <onboarding@example.com>\r\n\
To: a@acme.example, \"B\" <b@acme.example>\r\n\
Reply-To: help@example.com\r\n\
Subject: =?utf-8?q?Your_tenant_=E2=80=94_activate?=\r\n\
Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <abc@example.com>\r\n\
X-Partner-Operator-Event: activation\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Activate: https://portal.example.com/activate?tenant=3Dt-1&token=3Dabcdefabcdef=\r\n\
abcdefabcdefabcdef\r\n\
Gr=C3=BC=C3=9Fe\r\n";
        let text = readable(raw);
        assert_eq!(
            text,
            "From: M\u{fc}ller Onboarding <onboarding@example.com>\n\
             To: a@acme.example, B <b@acme.example>\n\
             Reply-To: help@example.com\n\
             Subject: Your tenant \u{2014} activate\n\
             Date: Wed, 25 Nov 2026 10:00:00 +0000\n\
             Message-ID: <abc@example.com>\n\
             \n\
             Activate: https://portal.example.com/activate?tenant=t-1&token=abcdefabcdefabcdefabcdefabcdef\n\
             Gr\u{fc}\u{df}e\n"
        );
    }

    #[test]
    fn reads_paths() {
        assert_eq!(
            path_argument("FROM:<a@example.com> SIZE=10", "FROM:").as_deref(),
            Some("a@example.com")
        );
        assert_eq!(
            path_argument("to: <B@example.com>", "TO:").as_deref(),
            Some("B@example.com")
        );
        assert_eq!(path_argument("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path_argument("FROM:a@example.com", "FROM:"), None);
        assert_eq!(path_argument("TO:<a@example.com>", "FROM:"), None);
    }
}

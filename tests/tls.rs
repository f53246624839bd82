//! End-to-end TLS tests: real sockets on 127.0.0.1, real rustls on both sides,
//! certificates generated into a tempdir by `sluis::tls::Ca`.
//!
//! The server is a tokio listener plus our acceptor answering one hand-written
//! HTTP/1.1 response per connection, whose body names the client certificate the
//! server saw (`<name> <fingerprint>`) or says `anonymous`. Handshake errors are
//! sent back to the test over a channel, so refusals are checked on the server side
//! (for the right reason) as well as on the client side.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is the failure

use sluis::tls::{
    client_config, client_config_with_crls, server_config, write_cert_and_key, Ca, ClientAuth,
    IssuedCert, ReloadableAcceptor, TlsError,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const HANDSHAKE: Duration = Duration::from_secs(5);

/// A CA directory with a node certificate, as `sluis init` would leave it.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    node_cert: PathBuf,
    node_key: PathBuf,
}

impl Pki {
    fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::create(dir.path(), ca_name).unwrap();
        let node = ca.issue_node_cert("cert-a", &[]).unwrap();
        let (node_cert, node_key) = write_cert_and_key(dir.path(), "node", &node).unwrap();
        Pki {
            dir,
            ca,
            node_cert,
            node_key,
        }
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    fn server(&self, crls: &[PathBuf], auth: ClientAuth) -> Arc<rustls::ServerConfig> {
        server_config(&self.node_cert, &self.node_key, &self.ca_path(), crls, auth).unwrap()
    }

    fn write_crl(&self, serials: &[&str]) -> PathBuf {
        let path = self.dir.path().join("revoked.crl");
        std::fs::write(&path, self.ca.revoke(serials).unwrap()).unwrap();
        path
    }
}

struct Server {
    addr: SocketAddr,
    acceptor: ReloadableAcceptor,
    errors: mpsc::UnboundedReceiver<TlsError>,
}

impl Server {
    async fn start(config: Arc<rustls::ServerConfig>, handshake: Duration) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = ReloadableAcceptor::new(config);
        let (tx, errors) = mpsc::unbounded_channel();
        let acc = acceptor.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acc = acc.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match acc.accept(tcp, handshake).await {
                        Ok((stream, peer)) => {
                            let body = match peer {
                                Some(id) => format!("{} {}", id.name, id.fingerprint),
                                None => "anonymous".to_owned(),
                            };
                            respond(stream, &body).await;
                        }
                        Err(e) => {
                            let _ = tx.send(e);
                        }
                    }
                });
            }
        });
        Server {
            addr,
            acceptor,
            errors,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.addr.port())
    }

    async fn next_error(&mut self) -> TlsError {
        tokio::time::timeout(Duration::from_secs(10), self.errors.recv())
            .await
            .expect("server reported no error")
            .expect("server channel closed")
    }
}

/// Read the request head, answer `200 OK` with `body`, close.
async fn respond<S>(stream: S, body: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await.unwrap();
    assert!(line.starts_with("GET / HTTP/1.1"), "request line {line:?}");
    loop {
        line.clear();
        if reader.read_line(&mut line).await.unwrap() == 0 || line == "\r\n" {
            break;
        }
    }
    let mut stream = reader.into_inner();
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await.unwrap();
    stream.shutdown().await.unwrap();
}

/// A reqwest client that trusts only `ca` and presents `identity` if given.
fn client(ca: &Ca, identity: Option<&IssuedCert>) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(ca.cert_pem().as_bytes()).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([root])
        .timeout(Duration::from_secs(10));
    if let Some(issued) = identity {
        let pem = format!("{}{}", issued.cert_pem, issued.key_pem);
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

async fn get(client: &reqwest::Client, url: &str) -> Result<String, reqwest::Error> {
    let resp = client.get(url).send().await?;
    assert_eq!(resp.status(), 200);
    resp.text().await
}

fn assert_refused(result: Result<String, reqwest::Error>) {
    assert!(
        result.is_err(),
        "expected a refused connection, got {result:?}"
    );
}

#[tokio::test]
async fn optional_without_certificate_is_anonymous() {
    let pki = Pki::new("CA one");
    let server = Server::start(pki.server(&[], ClientAuth::Optional), HANDSHAKE).await;
    let body = get(&client(&pki.ca, None), &server.url()).await.unwrap();
    assert_eq!(body, "anonymous");
}

#[tokio::test]
async fn optional_with_certificate_sees_name_and_fingerprint() {
    let pki = Pki::new("CA one");
    let server = Server::start(pki.server(&[], ClientAuth::Optional), HANDSHAKE).await;
    let alice = pki.ca.issue_client_cert("alice@cert-a").unwrap();
    let body = get(&client(&pki.ca, Some(&alice)), &server.url())
        .await
        .unwrap();
    assert_eq!(body, format!("alice@cert-a {}", alice.fingerprint));
    assert!(alice.fingerprint.starts_with("sha256:"));
}

#[tokio::test]
async fn optional_still_refuses_a_certificate_from_another_ca() {
    let pki = Pki::new("CA one");
    let other = Pki::new("CA two");
    let mut server = Server::start(pki.server(&[], ClientAuth::Optional), HANDSHAKE).await;
    let mallory = other.ca.issue_client_cert("mallory").unwrap();
    assert_refused(get(&client(&pki.ca, Some(&mallory)), &server.url()).await);
    let err = server.next_error().await.to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn required_refuses_a_client_without_certificate() {
    let pki = Pki::new("CA one");
    let mut server = Server::start(pki.server(&[], ClientAuth::Required), HANDSHAKE).await;
    assert_refused(get(&client(&pki.ca, None), &server.url()).await);
    let err = server.next_error().await;
    assert!(matches!(err, TlsError::Handshake { .. }), "{err}");
    assert!(err.to_string().contains("no certificate"), "{err}");
}

#[tokio::test]
async fn required_refuses_a_certificate_from_another_ca() {
    let pki = Pki::new("CA one");
    let other = Pki::new("CA two");
    let mut server = Server::start(pki.server(&[], ClientAuth::Required), HANDSHAKE).await;
    // Same node name, same CA name pattern: only the signature differs.
    let impostor = other.ca.issue_node_cert("cert-b", &[]).unwrap();
    assert_refused(get(&client(&pki.ca, Some(&impostor)), &server.url()).await);
    let err = server.next_error().await.to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn required_refuses_a_revoked_certificate_and_accepts_a_valid_one() {
    let pki = Pki::new("CA one");
    let revoked = pki.ca.issue_node_cert("cert-b", &[]).unwrap();
    let valid = pki.ca.issue_node_cert("cert-c", &[]).unwrap();
    let crl = pki.write_crl(&[&revoked.serial_hex]);
    let mut server = Server::start(pki.server(&[crl], ClientAuth::Required), HANDSHAKE).await;

    assert_refused(get(&client(&pki.ca, Some(&revoked)), &server.url()).await);
    let err = server.next_error().await.to_string();
    assert!(err.contains("Revoked"), "{err}");

    let body = get(&client(&pki.ca, Some(&valid)), &server.url())
        .await
        .unwrap();
    assert_eq!(body, format!("cert-c {}", valid.fingerprint));
}

#[tokio::test]
async fn node_certificate_works_through_our_client_config() {
    // Both sides built by this module: the node cert serves as server and client.
    let pki = Pki::new("CA one");
    let server = Server::start(pki.server(&[], ClientAuth::Required), HANDSHAKE).await;
    let config = client_config(&pki.node_cert, &pki.node_key, &pki.ca_path()).unwrap();
    for host in ["cert-a", "localhost", "127.0.0.1"] {
        let body = raw_get(config.clone(), server.addr, host).await.unwrap();
        let node_fp =
            sluis::tls::fingerprint_sha256(&sluis::tls::load_certs(&pki.node_cert).unwrap()[0]);
        assert_eq!(body, format!("cert-a {node_fp}"), "via {host}");
    }
}

#[tokio::test]
async fn client_refuses_a_server_certificate_from_another_ca() {
    let ours = Pki::new("CA one");
    let theirs = Pki::new("CA two");
    // A server whose certificate (valid names and all) comes from another CA.
    let server = Server::start(theirs.server(&[], ClientAuth::Optional), HANDSHAKE).await;

    assert_refused(get(&client(&ours.ca, None), &server.url()).await);

    let config = client_config(&ours.node_cert, &ours.node_key, &ours.ca_path()).unwrap();
    let err = raw_get(config, server.addr, "cert-a").await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn client_with_crls_refuses_a_revoked_server() {
    let pki = Pki::new("CA one");
    let server = Server::start(pki.server(&[], ClientAuth::Optional), HANDSHAKE).await;
    let served = sluis::tls::load_certs(&pki.node_cert).unwrap();
    let id = sluis::tls::PeerIdentity::from_der(&served[0]).unwrap();
    let crl = pki.write_crl(&[&id.serial_hex]);
    let analyst = pki.ca.issue_client_cert("alice").unwrap();
    let (cert, key) = write_cert_and_key(pki.dir.path(), "alice", &analyst).unwrap();
    let config = client_config_with_crls(&cert, &key, &pki.ca_path(), &[crl]).unwrap();
    let err = raw_get(config, server.addr, "cert-a").await.unwrap_err();
    assert!(err.to_string().contains("Revoked"), "{err}");
}

#[tokio::test]
async fn handshake_timeout_fires_for_a_silent_client() {
    let pki = Pki::new("CA one");
    let timeout = Duration::from_millis(200);
    let mut server = Server::start(pki.server(&[], ClientAuth::Optional), timeout).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let err = server.next_error().await;
    assert!(
        matches!(err, TlsError::HandshakeTimeout { timeout: t } if t == timeout),
        "{err}"
    );
    // The server dropped the connection: the client sees EOF (or a reset).
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .expect("connection still open after the handshake timeout");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
}

#[tokio::test]
async fn reload_swaps_in_a_crl() {
    let pki = Pki::new("CA one");
    let cert_b = pki.ca.issue_node_cert("cert-b", &[]).unwrap();
    let mut server = Server::start(pki.server(&[], ClientAuth::Required), HANDSHAKE).await;

    let body = get(&client(&pki.ca, Some(&cert_b)), &server.url())
        .await
        .unwrap();
    assert!(body.starts_with("cert-b "), "{body}");

    let crl = pki.write_crl(&[&cert_b.serial_hex]);
    server
        .acceptor
        .reload(pki.server(&[crl], ClientAuth::Required));

    // A fresh client (no pooled connection): the new handshake uses the new CRL.
    assert_refused(get(&client(&pki.ca, Some(&cert_b)), &server.url()).await);
    let err = server.next_error().await.to_string();
    assert!(err.contains("Revoked"), "{err}");
}

#[tokio::test]
async fn reload_also_stops_session_resumption() {
    // The same client config keeps its TLS session cache between connections, so
    // the second connection offers to resume. Resumption skips certificate checks;
    // the reloaded server config has a fresh cache, so it must verify (and refuse).
    let pki = Pki::new("CA one");
    let cert_b = pki.ca.issue_node_cert("cert-b", &[]).unwrap();
    let (cert, key) = write_cert_and_key(pki.dir.path(), "b", &cert_b).unwrap();
    let config = client_config(&cert, &key, &pki.ca_path()).unwrap();
    let mut server = Server::start(pki.server(&[], ClientAuth::Required), HANDSHAKE).await;

    let mut kinds = Vec::new();
    for _ in 0..2 {
        let (body, kind) = raw_exchange(config.clone(), server.addr, "cert-a")
            .await
            .unwrap();
        assert!(body.starts_with("cert-b "), "{body}");
        kinds.push(kind);
    }
    // Without a reload the session does resume, so the check below is meaningful.
    assert_eq!(kinds[1], Some(rustls::HandshakeKind::Resumed), "{kinds:?}");

    let crl = pki.write_crl(&[&cert_b.serial_hex]);
    server
        .acceptor
        .reload(pki.server(&[crl], ClientAuth::Required));
    assert!(raw_get(config, server.addr, "cert-a").await.is_err());
    let err = server.next_error().await.to_string();
    assert!(err.contains("Revoked"), "{err}");
}

#[test]
fn ca_reload_from_disk_issues_certificates_the_old_roots_accept() {
    // `sluis init --ca DIR` loads an existing CA; certificates it issues must chain
    // to the `ca.crt` peers already hold.
    let pki = Pki::new("CA one");
    let reloaded = Ca::load(pki.dir.path()).unwrap();
    let issued = reloaded.issue_node_cert("cert-d", &[]).unwrap();
    let dir = pki.dir.path();
    let (cert, key) = write_cert_and_key(dir, "d", &issued).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = Server::start(pki.server(&[], ClientAuth::Required), HANDSHAKE).await;
        let config = client_config(&cert, &key, &pki.ca_path()).unwrap();
        let body = raw_get(config, server.addr, "localhost").await.unwrap();
        assert!(body.starts_with("cert-d "), "{body}");
    });
    assert_same_file_contents(&dir.join("ca.crt"), reloaded.cert_pem());
}

fn assert_same_file_contents(path: &Path, expected: &str) {
    assert_eq!(std::fs::read_to_string(path).unwrap(), expected);
}

/// GET / over a tokio-rustls client built from `config`, connecting to `addr` and
/// verifying the server as `host`. Returns the response body.
async fn raw_get(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: &str,
) -> std::io::Result<String> {
    Ok(raw_exchange(config, addr, host).await?.0)
}

/// [`raw_get`], also returning how the handshake went (full or resumed).
async fn raw_exchange(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: &str,
) -> std::io::Result<(String, Option<rustls::HandshakeKind>)> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = rustls_pki_types::ServerName::try_from(host.to_owned()).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = connector.connect(name, tcp).await?;
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP head in {response:?}")))?;
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    Ok((body.to_owned(), tls.get_ref().1.handshake_kind()))
}

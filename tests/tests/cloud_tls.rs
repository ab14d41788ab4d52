//! TLS: an https endpoint whose certificate comes from a private CA is rejected with a TLS error,
//! and accepted once that CA is configured. The endpoint is `openssl s_server`, which prints what
//! it receives, so the second half proves the request really went through the encrypted channel.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hybridflow_core::model::cloud::{CloudConfig, CloudError, CloudModel, TimeoutStage, TrustRoots};
use hybridflow_core::model::{ChatModel, ChatRequest, Message, ModelError};
use hybridflow_e2e::scratch_dir;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl").args(args).current_dir(dir).stderr(Stdio::null()).status().expect("openssl");
    assert!(status.success(), "openssl {args:?}");
}

/// A CA and a leaf certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    openssl(dir, &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=hybridflow-test-ca"]);
    openssl(dir, &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(dir, &["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext"]);
}

struct TlsServer {
    child: Child,
    port: u16,
    output: std::path::PathBuf,
}

impl TlsServer {
    fn start(dir: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let output = dir.join("server.out");
        let child = Command::new("stdbuf")
            .args(["-oL", "openssl", "s_server", "-accept", &format!("127.0.0.1:{port}"), "-cert", "leaf.pem", "-key", "leaf.key"])
            .current_dir(dir)
            .stdin(Stdio::piped()) // s_server quits when its stdin closes
            .stdout(std::fs::File::create(&output).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        let server = Self { child, port, output };
        server.wait_for("ACCEPT");
        server
    }

    fn received(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.received().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn private_ca_is_rejected_unless_configured(trust_roots: TrustRoots) {
    let dir = scratch_dir(&format!("tls-{trust_roots:?}"));
    make_certificates(&dir);
    let server = TlsServer::start(&dir);
    let mut config = CloudConfig::new(format!("https://127.0.0.1:{}/v1", server.port), "m");
    config.trust_roots = trust_roots;
    config.timeouts.first_token = Duration::from_millis(800);
    config.retry.max_attempts = 1;
    let ask = || ChatRequest::new(vec![Message::user("hi")]);

    let rejected = CloudModel::new(config.clone()).unwrap().stream(ask()).await.map(|_| ());
    assert!(
        matches!(rejected, Err(ModelError::Cloud { error: CloudError::Tls(_), attempts: 1 })),
        "{rejected:?}"
    );
    assert!(!server.received().contains("POST /v1/chat/completions"));

    config.extra_root_certificates_pem = Some(std::fs::read_to_string(dir.join("ca.pem")).unwrap());
    let accepted = CloudModel::new(config).unwrap().stream(ask()).await.map(|_| ());
    // s_server never answers HTTP: the handshake passed and the request was sent, then we time out.
    assert!(
        matches!(accepted, Err(ModelError::Cloud { error: CloudError::Timeout(TimeoutStage::FirstToken), .. })),
        "{accepted:?}"
    );
    assert!(server.wait_for("POST /v1/chat/completions"), "request not received: {}", server.received());
    drop(server);
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn platform_roots_reject_a_private_ca_unless_configured() {
    private_ca_is_rejected_unless_configured(TrustRoots::Platform).await;
}

/// The Android default: Mozilla's roots compiled in, plus the configured extra ones.
#[tokio::test]
async fn bundled_roots_reject_a_private_ca_unless_configured() {
    private_ca_is_rejected_unless_configured(TrustRoots::Bundled).await;
}

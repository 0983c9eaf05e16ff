//! The real `stowage` binary as a child process, for tests where the
//! process itself matters: killing it, or reading metrics that no other
//! test in this process can move.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{JWT_SECRET, PASSWORD, Stack, fresh_service_settings};

/// The `stowage` binary, started (and restarted) on one data dir and, on
/// the services stack, one database and bucket.
pub struct Server {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Server {
    pub async fn start(stack: Stack) -> Self {
        Self::start_with(stack, &[]).await
    }

    /// Started with these variables set on top of the stack's.
    pub async fn start_with(stack: Stack, overrides: &[(&str, &str)]) -> Self {
        let data_dir = std::env::temp_dir().join(format!("stowage-proc-{}", uuid::Uuid::new_v4()));
        let mut env: Vec<(String, String)> = vec![
            ("STOWAGE_DATA_DIR".into(), data_dir.display().to_string()),
            ("STOWAGE_JWT_SECRET".into(), JWT_SECRET.into()),
            ("STOWAGE_PBKDF2_ROUNDS".into(), "1000".into()),
        ];
        if stack == Stack::Services {
            env.extend(fresh_service_settings().await);
        }
        for (key, value) in overrides {
            env.retain(|(k, _)| k != key);
            env.push(((*key).to_owned(), (*value).to_owned()));
        }
        // Waiting for the server blocks; tasks of this runtime (a relay,
        // say) must go on meanwhile.
        let (child, base, env) = tokio::task::spawn_blocking(move || {
            let (child, base) = spawn(&env, "127.0.0.1:0");
            (child, base, env)
        })
        .await
        .unwrap();
        Self {
            child,
            base,
            data_dir,
            env,
        }
    }

    /// Sends the process a signal (`HUP`, `TERM`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn kill_9(&mut self) {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap();
    }

    /// Starts again on the same address.
    pub fn restart(&mut self) {
        let listen = self.base.trim_start_matches("http://").to_owned();
        let (child, base) = spawn(&self.env, &listen);
        self.child = child;
        self.base = base;
    }

    /// Signs a user up; returns the access token.
    pub async fn sign_up(&self) -> String {
        let res = client()
            .post(format!("{}/api/v1/auth/signup", self.base))
            .json(&json!({"email": "someone@example.com", "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let session: Value = res.json().await.unwrap();
        session["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    /// The value of one series in this process's `/metrics`, if it is there.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Peak resident memory so far, in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn spawn(env: &[(String, String)], listen: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stowage"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("STOWAGE_") {
            cmd.env_remove(key);
        }
    }
    let mut child = cmd
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("STOWAGE_LISTEN", listen)
        .env("STOWAGE_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut said = Vec::new();
    let address = loop {
        assert!(Instant::now() < deadline, "the server did not start");
        let Some(line) = lines.next() else {
            panic!("the server exited early:\n{}", said.join("\n"));
        };
        let line = line.unwrap();
        said.push(line.clone());
        if let Ok(v) = serde_json::from_str::<Value>(&line)
            && v["message"] == "stowage listening"
        {
            break v["address"].as_str().unwrap().to_owned();
        }
    };
    // The server's warnings and errors show in the test's output.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("\"level\":\"ERROR\"") || line.contains("\"level\":\"WARN\"") {
                eprintln!("server: {line}");
            }
        }
    });
    (child, format!("http://{address}"))
}

pub fn client() -> reqwest::Client {
    // No pooled connections: none may outlive the killed server.
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap()
}

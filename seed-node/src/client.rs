//! The CLI's client for the node's HTTP API.

use anyhow::{Context, Result, anyhow};
use serde::{Serialize, de::DeserializeOwned};

use crate::api_types::ErrorReply;

/// A connection to a running node.
pub(crate) struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for the API at `base` (e.g. `http://127.0.0.1:7710`).
    pub(crate) fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// `GET path`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let sent = self.http.get(format!("{}{path}", self.base)).send().await;
        self.decode(sent).await
    }

    /// `DELETE path`.
    pub(crate) async fn delete<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let sent = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await;
        self.decode(sent).await
    }

    /// `POST path` with a JSON body.
    pub(crate) async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T> {
        let sent = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await;
        self.decode(sent).await
    }

    async fn decode<T: DeserializeOwned>(
        &self,
        sent: reqwest::Result<reqwest::Response>,
    ) -> Result<T> {
        let resp = sent.map_err(|e| {
            if e.is_connect() {
                anyhow!(
                    "no Pollen node is running at {} (start one with `pollen node --data DIR`, or pass --api)",
                    self.base
                )
            } else {
                anyhow!("talking to the node at {}: {e}", self.base)
            }
        })?;
        let status = resp.status();
        let body = resp.bytes().await.context("reading the node's reply")?;
        if !status.is_success() {
            let msg = serde_json::from_slice::<ErrorReply>(&body)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
            return Err(anyhow!("{msg}"));
        }
        serde_json::from_slice(&body)
            .context("the node's reply is not what this version of pollen expects")
    }
}

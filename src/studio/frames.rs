//! The email preview's frame: the rendered HTML is kept for a moment and served from a URL of its
//! own, under a policy that lets the email's inline styles apply and runs no script (the page's
//! own policy, which a `srcdoc` frame would inherit, forbids inline styles).

use std::collections::VecDeque;
use std::sync::Mutex;

use hyper::StatusCode;
use hyper::header::HeaderValue;

use super::asset;
use crate::http::{HttpResponse, error};

/// How many rendered email bodies are kept for preview frames: the latest renders of the pages
/// open at once.
const KEPT: usize = 32;

/// An email preview's policy: the inline styles email HTML needs, no script, nothing fetched
/// (an image only from `data:`), framed only by the studio's page, and a sandbox of its own.
const POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
                      base-uri 'none'; form-action 'none'; frame-ancestors 'self'; sandbox";

/// The latest email previews, each by a random token.
#[derive(Default)]
pub(super) struct Frames(Mutex<VecDeque<(String, String)>>);

impl Frames {
    /// Keeps `html` for a frame; its token.
    pub fn keep(&self, html: &str) -> String {
        let mut token = [0u8; 16];
        // The system's random source does not fail on the systems the relay runs on.
        let _ = aws_lc_rs::rand::fill(&mut token);
        let token = crate::tls::hex(&token);
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() >= KEPT {
            kept.pop_front();
        }
        kept.push_back((token.clone(), html.to_owned()));
        token
    }

    /// `GET /preview/TOKEN`: a kept email body, under its own policy.
    pub fn answer(&self, token: &str) -> HttpResponse {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some((_, html)) = kept.iter().find(|(k, _)| k == token) else {
            return error(
                StatusCode::NOT_FOUND,
                "no such preview: it was replaced by later ones",
            );
        };
        let mut response = asset(html.clone(), "text/html; charset=utf-8");
        response
            .headers_mut()
            .insert("content-security-policy", HeaderValue::from_static(POLICY));
        response
    }
}

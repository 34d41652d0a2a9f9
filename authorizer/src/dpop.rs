//! Sender-constrained PATs (DPoP, RFC 9449) in the authorizer.
//!
//! A PAT whose record carries a key thumbprint (`jkt`) is *bound*: it is
//! accepted only as `Authorization: DPoP <token>` with exactly one `DPoP`
//! header holding a fresh proof signed by that key, for this request's
//! method and URL, carrying the token's hash, and never seen before by any
//! instance. [`Dpop::check`] runs the stateless checks
//! ([`shared::dpop::check_proof`]) before the token is looked up;
//! [`Dpop::bind`] compares the key and spends the proof's `jti` once the
//! token is known.
//!
//! The deployment must not let API Gateway cache the authorizer's answers
//! (TTL 0, the construct's `dpop`): a cached Allow would serve the next
//! request without its proof. `AGPAT_DPOP` says it does not; off, every
//! bound token is refused.

use shared::dpop::{CheckedProof, ProofError, ProofRequirements, check_proof};

use crate::Reject;
use crate::event::{AuthorizerRequest, Header};
use crate::memo::Generations;
use crate::pat::TokenLookup;
use crate::policy::MethodArn;

/// How many spent proofs an instance remembers, to refuse a replay to the
/// same instance without a write (the replay store decides the others).
pub const SEEN_PROOFS_CAPACITY: usize = 65_536;

/// How a deployment accepts proofs (`AGPAT_DPOP=on` and the `DPOP_*`
/// variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopSettings {
    /// Where clients send requests besides the stage's default URL (custom
    /// domains, with their base path): normalised, without a trailing `/`.
    pub origins: Vec<String>,
    /// How old a proof may be, in seconds (`DPOP_PROOF_MAX_AGE_SECONDS`).
    pub max_age_secs: i64,
    /// How far ahead a client's clock may be, in seconds
    /// (`DPOP_CLOCK_SKEW_SECONDS`).
    pub max_skew_secs: i64,
}

impl DpopSettings {
    /// Settings with the defaults: 60 s old at most, 5 s of clock skew.
    pub fn new(origins: Vec<String>) -> Self {
        Self {
            origins,
            max_age_secs: 60,
            max_skew_secs: 5,
        }
    }

    /// Normalises one configured origin (an absolute `http(s)` URL, maybe
    /// with a base path); `None` if it is not one, or carries a query.
    pub fn origin(text: &str) -> Option<String> {
        if text.contains(['?', '#']) {
            return None;
        }
        let normal = shared::dpop::normalise_url(text.trim())?;
        Some(normal.trim_end_matches('/').to_owned())
    }
}

/// The authorizer's DPoP state: its settings and the proofs it has spent.
pub struct Dpop {
    settings: DpopSettings,
    seen: Generations<[u8; 32], ()>,
}

/// The credential's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `Bearer` (RFC 6750).
    Bearer,
    /// `DPoP` (RFC 9449 §7.1).
    Dpop,
}

impl Dpop {
    /// DPoP as `settings` say.
    pub fn new(settings: DpopSettings) -> Self {
        Self {
            settings,
            seen: Generations::new(SEEN_PROOFS_CAPACITY),
        }
    }

    /// The URLs this request may have been sent to: the stage's default URL
    /// and each configured origin, with the ARN's path. `None` for a path
    /// that a URL parser would read as more than a path (a query or fragment
    /// mark, a backslash, a control or space character, a `.` or `..`
    /// segment, a `%`): whatever API Gateway meant, no proof is matched
    /// against a rewritten spelling of it.
    fn urls(&self, arn: &MethodArn<'_>) -> Option<Vec<String>> {
        let path = arn.path();
        let odd_byte = path
            .bytes()
            .any(|b| matches!(b, b'?' | b'#' | b'\\' | b'%') || b <= b' ' || b == 0x7f);
        let dot_segment = path.split('/').any(|s| s == "." || s == "..");
        if odd_byte || dot_segment {
            return None;
        }
        let urls: Vec<String> = arn
            .default_stage_url()
            .into_iter()
            .chain(self.settings.origins.iter().cloned())
            .filter_map(|base| shared::dpop::normalise_url(&format!("{base}/{path}")))
            .collect();
        Some(urls)
    }

    /// The stateless checks of the request's one proof, for `token`.
    pub(crate) fn check<R: AuthorizerRequest + ?Sized>(
        &self,
        request: &R,
        arn: &MethodArn<'_>,
        token: &str,
        now: i64,
    ) -> Result<CheckedProof, Reject> {
        let proof = match request.dpop() {
            Header::One(value) => value,
            Header::Absent | Header::Ambiguous => return Err(Reject::Dpop(ProofError::Count)),
        };
        if proof.len() > shared::dpop::MAX_PROOF_BYTES {
            return Err(Reject::Dpop(ProofError::TooLarge));
        }
        // Two proofs folded into one header by a proxy.
        if proof.contains(&b',') {
            return Err(Reject::Dpop(ProofError::Count));
        }
        let proof =
            crate::event::visible_ascii(proof).ok_or(Reject::Dpop(ProofError::Malformed))?;
        let urls = self.urls(arn).ok_or(Reject::Dpop(ProofError::Url))?;
        let requirements = ProofRequirements {
            method: arn.http_method(),
            urls: &urls,
            access_token: token,
            now,
            max_age_secs: self.settings.max_age_secs,
            max_skew_secs: self.settings.max_skew_secs,
        };
        let checked = check_proof(proof, &requirements).map_err(Reject::Dpop)?;
        Ok(checked)
    }

    /// Accepts a proof for a token bound to `jkt`: the proof's key must be
    /// the token's, and its `jti` unused by every instance (this one's
    /// memory first, then the replay store's conditional write). A store
    /// failure fails closed.
    pub(crate) async fn bind<L: TokenLookup>(
        &self,
        jkt: &str,
        proof: &CheckedProof,
        store: &L,
    ) -> Result<(), Reject> {
        if !proof.jkt.is(jkt) {
            return Err(Reject::DpopKeyMismatch);
        }
        if self.seen.get(&proof.replay_key).is_some() {
            return Err(Reject::DpopReplay);
        }
        // Remembered here only once the store has answered: after a store
        // failure (a 500) the same proof may still be used once.
        match store
            .first_use_of_proof(&proof.replay_key, proof.remember_until())
            .await
        {
            Ok(first) => {
                self.seen.insert(proof.replay_key, ());
                if first {
                    Ok(())
                } else {
                    Err(Reject::DpopReplay)
                }
            }
            Err(e) => Err(Reject::StoreUnavailable(e.to_string())),
        }
    }
}

//! What an Allow answers, rendered once and shared.
//!
//! A verifier vouches for a principal ([`Vouched`]) and remembers it in its
//! cache. The first decision for that principal renders what every later one
//! answers ([`Grant`]: principal id, context and its JSON, usage-plan key);
//! the policy comes rendered from the per-(stage, scope set) policy cache.
//! A [`Decision`] is the two, shared: serialising it writes both renderings
//! verbatim, so a cached decision neither rebuilds nor re-serialises a policy.
//!
//! Nothing here decides: the checks that say Allow run on every decision in
//! the verifiers and in [`crate::Authorizer::decide`], before a grant is
//! looked at. A grant is tied to the exact principal and scope set it was
//! rendered from, and a verifier creates a new [`Vouched`] whenever it
//! re-reads or re-verifies a credential.

use std::sync::{Arc, OnceLock};

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::value::RawValue;
use shared::{AuthorizerContext, Principal, ScopeSet};

use crate::AuthorizerResponse;
use crate::policy::{CachedPolicy, MethodArn};

/// A principal a verifier vouches for, as its cache remembers it, with room
/// for the grant the first decision renders from it.
#[derive(Debug)]
pub struct Vouched {
    principal: Principal,
    grant: OnceLock<Arc<Grant>>,
}

impl Vouched {
    /// A freshly verified principal, with no grant rendered yet.
    pub fn new(principal: Principal) -> Arc<Self> {
        Arc::new(Self {
            principal,
            grant: OnceLock::new(),
        })
    }

    /// The principal.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The grant for `scopes`, rendered by `render` the first time. A grant
    /// rendered for other scopes is never returned: `render` runs again and
    /// its result is not kept.
    pub(crate) fn grant<E>(
        &self,
        scopes: ScopeSet,
        render: impl FnOnce() -> Result<Grant, E>,
    ) -> Result<Arc<Grant>, E> {
        if let Some(grant) = self.grant.get()
            && grant.scopes == scopes
        {
            return Ok(Arc::clone(grant));
        }
        let grant = Arc::new(render()?);
        if grant.scopes == scopes {
            // Another thread may have won the race with an identical grant.
            let _ = self.grant.set(Arc::clone(&grant));
        }
        Ok(grant)
    }
}

/// The principal-dependent part of an Allow, rendered once.
#[derive(Debug)]
pub struct Grant {
    scopes: ScopeSet,
    context: AuthorizerContext,
    context_json: Box<RawValue>,
    usage_identifier_key: Option<String>,
    /// The policy of the stage this grant last served: a deployment has one
    /// stage, so this skips the policy cache's lookup.
    policy: OnceLock<(Box<str>, Arc<CachedPolicy>)>,
}

impl Grant {
    /// Renders the context of `context` once.
    ///
    /// # Errors
    /// If the context cannot be serialised (it always can).
    pub fn new(
        scopes: ScopeSet,
        context: AuthorizerContext,
        usage_identifier_key: Option<String>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            scopes,
            context_json: serde_json::value::to_raw_value(&context)?,
            context,
            usage_identifier_key,
            policy: OnceLock::new(),
        })
    }

    /// The scopes this grant was rendered for.
    pub fn scopes(&self) -> ScopeSet {
        self.scopes
    }

    /// The context API Gateway passes to the backend.
    pub fn context(&self) -> &AuthorizerContext {
        &self.context
    }

    /// The policy for `arn`'s stage: the one remembered if it is that stage's,
    /// else `load`'s (remembered if none was).
    pub(crate) fn policy_for<E>(
        &self,
        arn: &MethodArn<'_>,
        load: impl FnOnce() -> Result<Arc<CachedPolicy>, E>,
    ) -> Result<Arc<CachedPolicy>, E> {
        if let Some((stage, policy)) = self.policy.get()
            && **stage == *arn.stage_prefix()
        {
            return Ok(Arc::clone(policy));
        }
        let policy = load()?;
        let _ = self
            .policy
            .set((arn.stage_prefix().into(), Arc::clone(&policy)));
        Ok(policy)
    }
}

/// An Allow (or a Deny-everything policy for a principal that holds no
/// route): a grant and a policy, shared with the caches that hold them.
#[derive(Debug, Clone)]
pub struct Decision {
    grant: Arc<Grant>,
    policy: Arc<CachedPolicy>,
}

impl Decision {
    pub(crate) fn new(grant: Arc<Grant>, policy: Arc<CachedPolicy>) -> Self {
        Self { grant, policy }
    }

    /// The context API Gateway passes to the backend.
    pub fn context(&self) -> &AuthorizerContext {
        &self.grant.context
    }

    /// The policy.
    pub fn policy(&self) -> &CachedPolicy {
        &self.policy
    }

    /// The usage-plan key named, if rate tiers are on.
    pub fn usage_identifier_key(&self) -> Option<&str> {
        self.grant.usage_identifier_key.as_deref()
    }

    /// The grant (tests: whether two decisions share one rendering).
    pub fn grant(&self) -> &Arc<Grant> {
        &self.grant
    }

    /// The same answer as the `aws_lambda_events` response type, which
    /// serialises to the same JSON (tests and the local gateway use it).
    pub fn to_response(&self) -> AuthorizerResponse {
        let mut response = AuthorizerResponse::default();
        response.principal_id = Some(self.grant.context.sub.clone());
        response.policy_document = self.policy.document().clone();
        response.context = self.grant.context.clone();
        response.usage_identifier_key = self.grant.usage_identifier_key.clone();
        response
    }
}

impl Serialize for Decision {
    /// The fields of [`AuthorizerResponse`], in its order, with the policy
    /// and the context written from their renderings.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("ApiGatewayCustomAuthorizerResponse", 4)?;
        s.serialize_field("principalId", &self.grant.context.sub)?;
        s.serialize_field("policyDocument", self.policy.json())?;
        s.serialize_field("context", &*self.grant.context_json)?;
        s.serialize_field("usageIdentifierKey", &self.grant.usage_identifier_key)?;
        s.end()
    }
}

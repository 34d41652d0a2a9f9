//! Authorizer integration tests: one binary, real RS256 keys, a real DynamoDB
//! API (moto) and moto's Cognito.

#![expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers"
)]

mod allow_lists;
mod cognito;
mod corpus;
mod decision;
mod dpop;
mod faults;
mod fixtures;
mod jwt;
mod lockout;
mod metrics;
mod pat;
mod release;
mod service;
mod support;
mod tiers;

//! The generic store conformance suite, each test on a fresh schema of the test server (see
//! `durable_store_postgres::testing`).

durable_store::conformance_tests!(durable_store_postgres::testing::conformance_store);

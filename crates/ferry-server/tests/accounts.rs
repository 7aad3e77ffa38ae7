//! The state store's contract, run on every kind of store: SQLite and a
//! real PostgreSQL server (`FERRY_TEST_POSTGRES_URL`).

use std::sync::Arc;

use chrono::{Duration, Utc};
use ferry_server::accounts::{self, Accounts, Session, SqliteAccounts};
use ferry_server::accounts_pg::PgAccounts;
use ferry_testdb::{Database, Engine};

async fn contract(store: Arc<dyn Accounts>) {
    let hash = accounts::hash_password("pw").unwrap();
    assert!(store.set_password("alice", &hash).await.unwrap(), "a new user");
    assert!(accounts::verify_password("pw", &store.password_hash("alice").await.unwrap().unwrap()).unwrap());
    assert!(!accounts::verify_password("nope", &hash).unwrap());
    assert_eq!(store.password_hash("nobody").await.unwrap(), None);

    // Sessions: live ones are found, expired ones are not.
    let (id, session) = accounts::new_session("alice");
    store.add_session(&accounts::digest(&id), &session).await.unwrap();
    let found = store
        .session(&accounts::digest(&id))
        .await
        .unwrap()
        .expect("the session");
    assert_eq!(
        (found.user.as_str(), found.csrf.as_str()),
        ("alice", session.csrf.as_str())
    );
    assert!(store.session(&accounts::digest("other")).await.unwrap().is_none());
    let expired = Session {
        user: "alice".into(),
        csrf: "c".into(),
        expires_at: Utc::now() - Duration::seconds(1),
    };
    store.add_session("expired", &expired).await.unwrap();
    assert!(store.session("expired").await.unwrap().is_none());

    // A new password ends the sessions.
    assert!(!store
        .set_password("alice", &accounts::hash_password("pw2").unwrap())
        .await
        .unwrap());
    assert!(store.session(&accounts::digest(&id)).await.unwrap().is_none());

    // Tokens.
    store.add_token("alice", "t1").await.unwrap();
    assert_eq!(store.token_user("t1").await.unwrap().as_deref(), Some("alice"));
    assert_eq!(store.token_user("t2").await.unwrap(), None);
    let users = store.users().await.unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!((users[0].name.as_str(), users[0].tokens), ("alice", 1));

    // Failed sign-ins count within the window, per user.
    let since = Utc::now() - Duration::minutes(5);
    assert_eq!(store.failed_sign_in("alice", since).await.unwrap(), 1);
    assert_eq!(store.failed_sign_in("alice", since).await.unwrap(), 2);
    assert_eq!(store.failed_sign_in("bob", since).await.unwrap(), 1);
    // Those older than the window are forgotten.
    assert_eq!(
        store
            .failed_sign_in("alice", Utc::now() + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    store.clear_failures("alice").await.unwrap();
    assert_eq!(store.failed_sign_in("alice", since).await.unwrap(), 1);

    // Removing a user ends their sessions and tokens.
    let (id, session) = accounts::new_session("alice");
    store.add_session(&accounts::digest(&id), &session).await.unwrap();
    assert!(store.remove("alice").await.unwrap());
    assert!(!store.remove("alice").await.unwrap());
    assert_eq!(store.token_user("t1").await.unwrap(), None);
    assert!(store.session(&accounts::digest(&id)).await.unwrap().is_none());
    assert!(store.users().await.unwrap().is_empty());
}

#[tokio::test]
async fn the_sqlite_state_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(Arc::new(SqliteAccounts::open(&dir.path().join("state.db")).unwrap())).await;
}

#[tokio::test]
async fn the_postgres_state_store_keeps_the_contract() {
    let Some(db) = Database::create(Engine::Postgres, "postgres state store", "ferry_state") else {
        return;
    };
    contract(Arc::new(PgAccounts::open(&db.url).await.unwrap())).await;
    // Opening again finds the tables there.
    PgAccounts::open(&db.url).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_state_store_names_no_password() {
    let e = PgAccounts::open("postgres://ferry:s3cret@127.0.0.1:1/db")
        .await
        .err()
        .expect("refused");
    let text = e.to_string();
    assert!(text.contains("cannot be reached") && !text.contains("s3cret"), "{text}");
}

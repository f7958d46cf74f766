use std::net::TcpStream;

use heartbridge_pgtest::PgCluster;

#[test]
fn starts_a_cluster_and_creates_a_database() {
    let cluster = PgCluster::start();
    let a = cluster.new_database();
    let b = cluster.new_database();
    assert_ne!(a, b, "each call makes its own database");
    assert_eq!(cluster.psql(&a, "select current_database()"), "t0");
    assert_eq!(cluster.psql(&b, "select current_database()"), "t1");
    // The databases are separate: a table made in one is not in the other.
    cluster.psql(
        &a,
        "create table only_here (x bigint); insert into only_here values (7)",
    );
    assert_eq!(cluster.psql(&a, "select x from only_here"), "7");
    assert_eq!(
        cluster.psql(
            &b,
            "select count(*) from pg_tables where tablename = 'only_here'"
        ),
        "0"
    );
    // Durability settings are the production ones (fsync on, synchronous commit on).
    assert_eq!(cluster.psql(&a, "show fsync"), "on");
    assert_eq!(cluster.psql(&a, "show synchronous_commit"), "on");

    // A crash restart keeps committed data and comes back on the same port.
    cluster.restart("immediate");
    assert_eq!(cluster.psql(&a, "select x from only_here"), "7");
    assert!(cluster.bin("pg_dump").is_file());

    // Dropping the cluster stops the server and removes its files.
    let port = cluster.port();
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nothing listens on {port} after drop"
    );
    assert!(!dir.exists(), "the temp dir is removed");
}

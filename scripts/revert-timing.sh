#!/usr/bin/env bash
# Times `ferry promote` and the `ferry revert` that undoes it, into each
# engine, and prints the medians and the ratio revert/promote.
#
#   scripts/revert-timing.sh [ROWS] [RUNS] [ENGINES]
#
# ROWS (default 32160) rows are promoted from an SQLite staging database:
# the first half already in production (and in the sync base, by a
# baseline) and changed in staging, so they are updates; the other half are
# inserts. Each run promotes them, then reverts that promotion, which puts
# production and the sync base back as they were, so runs repeat. ENGINES is
# any of "sqlite postgres mariadb" (default: all three); the servers come
# from FERRY_TEST_POSTGRES_URL and FERRY_TEST_MYSQL_URL (a database is
# created and dropped on each). FERRY names the binary (default
# target/release/ferry under CARGO_TARGET_DIR or ./target).
set -euo pipefail

ROWS=${1:-32160}
RUNS=${2:-3}
ENGINES=${3:-"sqlite postgres mariadb"}
FERRY=${FERRY:-${CARGO_TARGET_DIR:-target}/release/ferry}
FERRY=$(realpath "$FERRY")
HALF=$((ROWS / 2))

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }

median() { python3 -c 'import statistics,sys; print("%.2f" % statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

staging() {
    rm -f "$work/staging.db"
    sqlite3 "$work/staging.db" <<SQL
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS)
INSERT INTO items SELECT i, 'item ' || i, i % 97, 'a note of some length for row ' || i FROM n;
SQL
}

# Production holds the first half as staging had it; the baseline records
# them as synced; then staging changes them.
prepare() {
    local engine=$1 db=$2
    case $engine in
    sqlite)
        rm -f "$work/production.db"
        sqlite3 "$work/production.db" <<SQL
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER, note TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $HALF)
INSERT INTO items SELECT i, 'item ' || i, i % 97, 'a note of some length for row ' || i FROM n;
SQL
        export FERRY_PRODUCTION_URL="sqlite://$work/production.db"
        ;;
    postgres)
        psql -q "$FERRY_TEST_POSTGRES_URL" -c "CREATE DATABASE $db"
        export FERRY_PRODUCTION_URL="${FERRY_TEST_POSTGRES_URL%/*}/$db"
        psql -q "$FERRY_PRODUCTION_URL" <<SQL
CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, qty integer, note text);
INSERT INTO items SELECT i, 'item ' || i, i % 97, 'a note of some length for row ' || i FROM generate_series(1, $HALF) i;
SQL
        ;;
    mariadb)
        export FERRY_PRODUCTION_URL="${FERRY_TEST_MYSQL_URL%/*}/$db"
        mysql_url "$FERRY_TEST_MYSQL_URL" -e "CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        mysql_url "$FERRY_PRODUCTION_URL" -e "
CREATE TABLE items (id int PRIMARY KEY, name varchar(100) NOT NULL, qty int, note text);
INSERT INTO items SELECT seq, CONCAT('item ', seq), seq % 97, CONCAT('a note of some length for row ', seq) FROM seq_1_to_$HALF;"
        ;;
    esac
    (cd "$work" && "$FERRY" baseline staging production --yes >/dev/null)
    sqlite3 "$work/staging.db" "UPDATE items SET name = name || ' (changed)' WHERE id <= $HALF"
}

# mysql://USER[:PASSWORD]@HOST:PORT/DB -> the mysql client's options.
mysql_url() {
    local url=$1
    shift
    python3 - "$url" "$@" <<'PY'
import os, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
args = ["mysql", "-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", u.username or "root"]
if u.password:
    args.append("-p" + urllib.parse.unquote(u.password))
if u.path.strip("/"):
    args.append(u.path.strip("/"))
os.execvp("mysql", args + sys.argv[2:])
PY
}

drop() {
    local engine=$1 db=$2
    case $engine in
    postgres) psql -q "$FERRY_TEST_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" ;;
    mariadb) mysql_url "$FERRY_TEST_MYSQL_URL" -e "DROP DATABASE IF EXISTS $db" ;;
    *) ;;
    esac
}

cat >"$work/ferry.toml" <<'TOML'
pipeline = ["staging", "production"]

[environments.staging]
url = "sqlite://staging.db"

[environments.production]
url_env = "FERRY_PRODUCTION_URL"

[tables.items]
key = ["id"]
TOML

printf '%-9s %6s %5s %12s %12s %7s\n' engine rows runs "promote (s)" "revert (s)" ratio
for engine in $ENGINES; do
    db="ferry_revert_timing_$$"
    staging
    prepare "$engine" "$db"
    promote_times=()
    revert_times=()
    for _ in $(seq "$RUNS"); do
        t0=$(now)
        id=$(cd "$work" && "$FERRY" promote staging production --yes --json |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["promotion"])')
        t1=$(now)
        (cd "$work" && "$FERRY" revert "$id" --yes >/dev/null)
        t2=$(now)
        promote_times+=("$(echo "$t1 - $t0" | bc)")
        revert_times+=("$(echo "$t2 - $t1" | bc)")
    done
    p=$(median "${promote_times[@]}")
    r=$(median "${revert_times[@]}")
    printf '%-9s %6s %5s %12s %12s %7s\n' "$engine" "$ROWS" "$RUNS" "$p" "$r" \
        "$(python3 -c "print('%.2f' % ($r / $p))")"
    drop "$engine" "$db"
done

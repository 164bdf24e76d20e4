# shellcheck shell=bash
# Shared by the cluster/ scripts (sourced, not run): where the cluster lives, the binaries, and
# starting, stopping and waiting for one node.
#
# Layout: $CLUSTER_DIR/node-<i>/ is node i's data directory and holds
#   args       the `weft serve` arguments, one per line (restart reuses them)
#   netns      the network namespace the node runs in (netns clusters only)
#   pid        the process ID while it runs
#   listening  the node's `listening otlp=… query=… grpc=… internal=… node=…` line
#   log        its stderr
# and $CLUSTER_DIR/binaries names the weft and weftctl binaries the cluster was started with.

WEFT=${WEFT:-}
WEFTCTL=${WEFTCTL:-}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLUSTER_DIR=${WEFT_CLUSTER_DIR:-$ROOT/weft-data/cluster}
SCRIPT_NAME="cluster/$(basename "$0")"
# Seconds to wait for a node to start (WAL replay included) and to stop after SIGTERM.
START_TIMEOUT=${WEFT_START_TIMEOUT:-60}
STOP_TIMEOUT=${WEFT_STOP_TIMEOUT:-15}

die() {
    echo "$SCRIPT_NAME: $*" >&2
    exit 1
}

note() {
    echo "$SCRIPT_NAME: $*" >&2
}

# node_name 3 | node-3 -> node-3
node_name() {
    local n=${1#node-}
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "'$1' is not a node (use 3 or node-3)"
    echo "node-$n"
}

node_dir() {
    echo "$CLUSTER_DIR/$1"
}

# The nodes of the cluster (node-1 node-2 …, in number order).
all_nodes() {
    local d
    [[ -d $CLUSTER_DIR ]] || return 0
    for d in "$CLUSTER_DIR"/node-*/; do
        [[ -f $d/args ]] && basename "$d"
    done | sort -t- -k2 -n
}

# Builds weft and weftctl (unless WEFT_BIN is set), sets WEFT and WEFTCTL, and records them for the
# other scripts. $1: debug or release.
build_binaries() {
    local mode=$1
    if [[ -n ${WEFT_BIN:-} ]]; then
        WEFT=$WEFT_BIN
        WEFTCTL=${WEFTCTL_BIN:-$(dirname "$WEFT_BIN")/weftctl}
    else
        note "building weft and weftctl ($mode)"
        (cd "$ROOT" && swift build -c "$mode" --product weft >&2 && swift build -c "$mode" --product weftctl >&2) \
            || die "swift build failed"
        WEFT=$ROOT/.build/$mode/weft
        WEFTCTL=${WEFTCTL_BIN:-$ROOT/.build/$mode/weftctl}
    fi
    [[ -x $WEFT ]] || die "no weft binary at $WEFT"
    [[ -x $WEFTCTL ]] || die "no weftctl binary at $WEFTCTL"
    mkdir -p "$CLUSTER_DIR"
    printf 'WEFT=%q\nWEFTCTL=%q\n' "$WEFT" "$WEFTCTL" >"$CLUSTER_DIR/binaries"
}

# Sets WEFT and WEFTCTL from what `up` recorded.
load_binaries() {
    [[ -f $CLUSTER_DIR/binaries ]] || die "no cluster in $CLUSTER_DIR (run cluster/up first)"
    # shellcheck source=/dev/null
    source "$CLUSTER_DIR/binaries"
}

# The PID of a running node, or nothing (a stale pid file, or a PID now used by another program, is ignored).
running_pid() {
    local file pid
    file=$(node_dir "$1")/pid
    [[ -f $file ]] || return 0
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    if [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "serve .*--node-id $1 "; then
        echo "$pid"
    fi
}

# A field of the node's listening line: listening_field node-1 query -> 127.0.0.1:3200
listening_field() {
    local file
    file=$(node_dir "$1")/listening
    [[ -f $file ]] || return 0
    tr ' ' '\n' <"$file" | sed -n "s/^$2=//p" | head -n 1
}

query_url() {
    local address
    address=$(listening_field "$1" query)
    [[ -n $address ]] && echo "http://$address"
}

# Starts a node from its args file, then waits until it prints its listening line and /ready is 200.
start_node() {
    local node=$1 dir pid deadline args=()
    dir=$(node_dir "$node")
    [[ -z $(running_pid "$node") ]] || die "$node is already running (pid $(running_pid "$node"))"
    mapfile -t args <"$dir/args"
    # setsid: the node outlives this shell and its terminal. `ip netns exec` and setsid both exec, and a
    # simple command in the background is not wrapped in a subshell, so $! is weft's own PID.
    local launch=(setsid "$WEFT" serve "${args[@]}")
    [[ ! -f $dir/netns ]] || launch=(ip netns exec "$(<"$dir/netns")" "${launch[@]}")
    : >"$dir/listening"
    "${launch[@]}" >"$dir/listening" 2>>"$dir/log" </dev/null &
    pid=$!
    echo "$pid" >"$dir/pid"
    deadline=$((SECONDS + START_TIMEOUT))
    until grep -q '^listening ' "$dir/listening"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$dir/pid"
            die "$node exited while starting; the end of $dir/log:
$(tail -n 5 "$dir/log")"
        fi
        ((SECONDS < deadline)) || die "$node did not start within ${START_TIMEOUT}s (see $dir/log)"
        sleep 0.1
    done
    wait_ready "$node"
}

# Waits until the node's /ready answers 200.
wait_ready() {
    local node=$1 url deadline
    url="$(query_url "$node")/ready"
    deadline=$((SECONDS + START_TIMEOUT))
    until curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; do
        ((SECONDS < deadline)) || die "$node: $url is not 200 after ${START_TIMEOUT}s (see $(node_dir "$node")/log)"
        sleep 0.2
    done
}

# Stops a node: SIGTERM, then SIGKILL after STOP_TIMEOUT seconds. Does nothing if it is not running.
stop_node() {
    local node=$1 pid deadline
    pid=$(running_pid "$node")
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + STOP_TIMEOUT))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            note "$node (pid $pid) did not stop within ${STOP_TIMEOUT}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$(node_dir "$node")/pid"
}

# Waits until `weftctl members` on node-1 shows $1 members, all alive and ACTIVE in the ring.
wait_members_active() {
    local want=$1 url deadline out="" active
    url=$(query_url node-1)
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        out=$("$WEFTCTL" members --url "$url" 2>&1) || true
        active=$(awk 'NR > 1 && / alive / && / ACTIVE /' <<<"$out" | wc -l)
        [[ $(tail -n 1 <<<"$out") == "$want members: $want alive" && $active -eq $want ]] && return 0
        sleep 0.2
    done
    die "node-1 does not see $want alive ACTIVE members after ${START_TIMEOUT}s; it shows:
$out"
}

# Waits until a running node other than $1 (node-1 first) sees $1 alive.
wait_seen_alive() {
    local node=$1 peer url deadline row=""
    for peer in $(all_nodes); do
        [[ $peer != "$node" && -n $(running_pid "$peer") ]] && break
        peer=""
    done
    [[ -n $peer ]] || return 0
    url=$(query_url "$peer")
    deadline=$((SECONDS + START_TIMEOUT))
    while ((SECONDS < deadline)); do
        row=$("$WEFTCTL" members --url "$url" 2>&1 | awk -v n="$node" '$1 == n || $2 == n') || true
        [[ $row == *" alive "* ]] && return 0
        sleep 0.2
    done
    die "$peer does not see $node alive after ${START_TIMEOUT}s (last: $row)"
}

# Prints each node's endpoints.
print_endpoints() {
    local node line
    for node in $(all_nodes); do
        line=$(sed -n 's/^listening //p' "$(node_dir "$node")/listening" 2>/dev/null)
        if [[ -n $(running_pid "$node") ]]; then
            echo "  $node  ${line:-?}"
        else
            echo "  $node  (stopped)"
        fi
    done
}

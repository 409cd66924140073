#!/usr/bin/env bash
# Router benchmark: one small backend (nginx, one worker, `return 200 "ok\n"`) reached
# directly, through flynn-router, through haproxy and through nginx, alternating the targets
# ROUNDS times (A B C D A B C D ...). HTTP/1.1 keep-alive with wrk, HTTP/2 (h2c) with h2load.
# Proxy and backend share CPU 1 (one thread or worker each); the load generator runs on
# CPU 0. Prints req/s, p50 and p99 per run, medians and ratios; then the RSS of the router
# and of nginx with 10,000 idle keep-alive connections. Runs in a private network namespace (loopback only).
# Run on an idle machine: bench/router.sh [ROUNDS] [SECONDS]
# ROUTER_COMPARE=PATH adds another flynn-router build (e.g. a worktree's at the parent commit)
# as the target `compared`, measured in the same rounds: a change's effect without the
# machine's drift between runs.
# PEER_HEADERS=1 has haproxy and nginx add the request headers flynn-router adds
# (X-Forwarded-For/Proto/Port, X-Request-Id, X-Request-Start), so that every proxy does the
# same work per request.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${ROUTER_BENCH_NS:-}" ]]; then
    bash script/deps
    cargo build --release --locked -p router -p discoverd --bins
    exec unshare --net --mount --propagation private -- env ROUTER_BENCH_NS=1 bash "$0" "$@"
fi
ip link set lo up
rounds="${1:-3}"
secs="${2:-8}"
bin="$PWD/target/release"
ulimit -n "$(ulimit -Hn)"  # the hard limit (raising it needs CAP_SYS_RESOURCE)
work=$(mktemp -d /tmp/flynn-router-bench.XXXXXX)
pids=()
. bench/lib.sh
trap kill_pids_and_remove_work EXIT

# The backend: nginx, one worker, HTTP/1.1 on 18001 and h2c on 18002.
mkdir -p "$work/nginx-b" "$work/nginx-p"
cat >"$work/backend.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-b/pid; error_log stderr error;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:18001; listen 127.0.0.1:18002 http2; location / { return 200 "ok\n"; } } }
CONF
taskset -c 1 nginx -c "$work/backend.conf" -p "$work/nginx-b" &
pids+=($!)

# The peers, with keep-alive to the backend.
haproxy_headers="" nginx_headers=""
if [[ -n "${PEER_HEADERS:-}" ]]; then
    haproxy_headers="  option forwardfor
  unique-id-format %[uuid()]
  http-request set-header X-Request-Id %[unique-id]
  http-request set-header X-Forwarded-Proto http
  http-request set-header X-Forwarded-Port %[dst_port]
  http-request set-header X-Request-Start %[date(0,ms)]"
    nginx_headers='proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Port $server_port;
      proxy_set_header X-Request-Id $request_id; proxy_set_header X-Request-Start $msec;'
fi
cat >"$work/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 4000  # haproxy needs 2x+15 descriptors; the hard limit here is 20000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend h1
  bind 127.0.0.1:18011
  bind 127.0.0.1:18012 proto h2
$haproxy_headers
  default_backend b
backend b
  server s1 127.0.0.1:18001
CONF
taskset -c 1 haproxy -f "$work/haproxy.cfg" -db &
pids+=($!)
cat >"$work/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx-p/pid; error_log stderr error;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
  upstream b { server 127.0.0.1:18001; keepalive 64; }
  server { listen 127.0.0.1:18021; listen 127.0.0.1:18022 http2;
    location / { proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection "";
      $nginx_headers } } }
CONF
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work/nginx-p" &
pids+=($!)

# flynn-router on one thread (a single-threaded runtime, as haproxy nbthread 1 and one nginx
# worker), the backend found through a real discoverd.
key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
DISCOVERD_KEY="$key" taskset -c 0 "$bin/discoverd" --http 127.0.0.1:11111 --dns 127.0.0.1:10053 \
    --data "$work/discoverd" >"$work/discoverd.log" 2>&1 &
pids+=($!)
wait_port 11111
curl -sf -X PUT -H "Authorization: Bearer $key" -d '{"addr":"127.0.0.1:18001"}' \
    "http://127.0.0.1:11111/services/bench/instances/b1?ttl=3600" >/dev/null
cat >"$work/routes.json" <<'JSON'
{"routes": [{"type": "http", "id": "bench", "domain": "*", "service": "bench"}]}
JSON
# router BIN NAME PORT: a flynn-router on PORT (its API on PORT+8), logging to NAME.log.
router() {
    ROUTER_THREADS=1 taskset -c 1 "$1" --http "127.0.0.1:$3" --https "" \
        --api "127.0.0.1:$(($3 + 8))" --routes-file "$work/routes.json" \
        --discoverd http://127.0.0.1:11111 --access-log false >"$work/$2.log" 2>&1 &
    pids+=($!)
}
router "$bin/flynn-router" router 18031
router_pid=${pids[-1]}
routers=(18031)
targets=(direct flynn-router haproxy nginx)
if [[ -n "${ROUTER_COMPARE:-}" ]]; then
    router "$ROUTER_COMPARE" router-compared 18041
    routers+=(18041)
    targets=(direct flynn-router compared haproxy nginx)
fi
for p in 18001 18002 18011 18012 18021 18022; do wait_port "$p"; done
for p in "${routers[@]}"; do
    wait_port "$((p + 8))"
    until curl -sf "http://127.0.0.1:$p/" >/dev/null; do sleep 0.05; done
done

declare -A h1=([direct]=18001 [flynn-router]=18031 [compared]=18041 [haproxy]=18011 [nginx]=18021)
declare -A h2=([direct]=18002 [flynn-router]=18031 [compared]=18041 [haproxy]=18012 [nginx]=18022)
ms() { # a wrk latency ("812.00us", "1.20ms", "2.00s") in ms
    awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
declare -A rps p50 p99 h2rps
for t in "${targets[@]}"; do rps[$t]=""; p50[$t]=""; p99[$t]=""; h2rps[$t]=""; done
echo "round target        h1 req/s    p50 ms   p99 ms   h2 req/s"
for ((r = 1; r <= rounds; r++)); do
    for t in "${targets[@]}"; do
        url="http://127.0.0.1:${h1[$t]}/"
        taskset -c 0 wrk -t1 -c32 -d3s "$url" >/dev/null
        out=$(taskset -c 0 wrk -t1 -c32 -d"${secs}s" --latency "$url")
        q=$(awk '/^Requests\/sec/ { print $2 }' <<<"$out")
        a=$(ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")")
        b=$(ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")
        h=$(taskset -c 0 h2load -c32 -m10 -D"$secs" "http://127.0.0.1:${h2[$t]}/" 2>/dev/null |
            awk '/^finished in/ { gsub(",", ""); print $4 }')
        rps[$t]+="$q "; p50[$t]+="$a "; p99[$t]+="$b "; h2rps[$t]+="$h "
        printf "%-5s %-12s %10s %9s %8s %10s\n" "$r" "$t" "$q" "$a" "$b" "$h"
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "medians         h1 req/s    p50 ms   p99 ms   h2 req/s"
declare -A m1 m50 m99 mh2
for t in "${targets[@]}"; do
    m1[$t]=$(median <<<"${rps[$t]}"); m50[$t]=$(median <<<"${p50[$t]}")
    m99[$t]=$(median <<<"${p99[$t]}"); mh2[$t]=$(median <<<"${h2rps[$t]}")
    printf "%-12s %12s %9s %8s %10s\n" "$t" "${m1[$t]}" "${m50[$t]}" "${m99[$t]}" "${mh2[$t]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
echo
peers=(haproxy nginx)
[[ -z "${ROUTER_COMPARE:-}" ]] || peers+=(compared)
for peer in "${peers[@]}"; do
    echo "flynn-router / $peer: h1 req/s $(ratio "${m1[flynn-router]}" "${m1[$peer]}")," \
        "p99 $(ratio "${m99[flynn-router]}" "${m99[$peer]}"), h2 req/s $(ratio "${mh2[flynn-router]}" "${mh2[$peer]}")"
done
echo "flynn-router p50 added over direct: $(awk -v a="${m50[flynn-router]}" -v b="${m50[direct]}" 'BEGIN { printf "%.3f", a - b }') ms"

# 10,000 idle keep-alive connections, each after one request, through flynn-router and
# through nginx (haproxy's maxconn is bound by the descriptor limit here): RSS growth once
# they have been idle for 3 s (longer than the router's 1 s before it parks a connection).
python3 - "$router_pid" 18031 "$(cat "$work/nginx-p/pid")" 18021 <<'PY'
import socket, sys, time
def rss(pid):
    """RSS in KiB of pid and its children (nginx's workers)."""
    total = 0
    pids = [pid]
    for task in open(f"/proc/{pid}/task/{pid}/children").read().split():
        pids.append(task)
    for p in pids:
        for line in open(f"/proc/{p}/status"):
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total
args = sys.argv[1:]
for name, pid, port in (("flynn-router", args[0], int(args[1])), ("nginx", args[2], int(args[3]))):
    before = rss(pid)
    conns = []
    for i in range(10000):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        conns.append(s)
    for s in conns:
        data = b""
        while not data.endswith(b"ok\n"):
            data += s.recv(4096)
    time.sleep(3)
    after = rss(pid)
    print(f"{name} RSS: {before} KiB idle, {after} KiB with {len(conns)} idle keep-alive "
          f"connections ({(after - before) * 1024 / len(conns) / 1024:.1f} KiB each)")
    for s in conns:
        s.close()
    time.sleep(1)
PY

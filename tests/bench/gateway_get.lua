-- wrk script for scripts/bench: GET /v1/wallets/TXP_BENCH_WALLET with the bearer token
-- TXP_BENCH_TOKEN (keep-alive connections). Prints a RESULT line at the end.
wrk.method = "GET"
wrk.path = "/v1/wallets/" .. os.getenv("TXP_BENCH_WALLET")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TXP_BENCH_TOKEN")

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end

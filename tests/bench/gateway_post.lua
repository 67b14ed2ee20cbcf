-- wrk script for scripts/bench: POST /v1/transactions, each request with its own
-- Idempotency-Key (thread id + a random run prefix + a counter), a 1-cent deposit to
-- TXP_BENCH_WALLET with the bearer token TXP_BENCH_TOKEN; or, when TXP_BENCH_USERS names a
-- file of "wallet token" lines, to those users' wallets in turn. Prints a RESULT line at the end.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  math.randomseed(os.time() * 1000 + (id or 0) * 7919)
  prefix = string.format("bench-%d-%d-%08x-", os.time(), id or 0, math.random(0, 0x7fffffff))
  counter = 0
  users = {}
  local file = os.getenv("TXP_BENCH_USERS")
  if file and file ~= "" then
    for line in io.lines(file) do
      local wallet, token = line:match("^(%d+) (%S+)$")
      if wallet then table.insert(users, {"Bearer " .. token, '{"wallet_id":' .. wallet .. ',"type":"deposit","amount":1,"currency":"USD"}'}) end
    end
  else
    users[1] = {"Bearer " .. os.getenv("TXP_BENCH_TOKEN"),
                '{"wallet_id":' .. os.getenv("TXP_BENCH_WALLET") .. ',"type":"deposit","amount":1,"currency":"USD"}'}
  end
end

request = function()
  counter = counter + 1
  local u = users[counter % #users + 1]
  return wrk.format("POST", "/v1/transactions", {
    ["Authorization"] = u[1],
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = prefix .. counter,
  }, u[2])
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d duration_us=%d non2xx=%d socket_errors=%d p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end

// See acceptance_batcher.hpp. A group is: BEGIN; gateway.accept_fast(arrays), which accepts
// the plainly new and valid requests set-based; gateway.accept_batch(arrays) for the others
// (replays, conflicts, errors; again without a request that failed); one multi-row INSERT of
// the outbox rows of the requests that created a transaction; COMMIT. Usually four round
// trips and one fsync for up to max_batch requests.
#include "acceptance_batcher.hpp"

#include "ledger.hpp"
#include "txp/common/ids.hpp"
#include "txp/common/log.hpp"
#include "txp/common/metrics.hpp"

#include <algorithm>
#include <numeric>
#include <random>

namespace txp::gateway {

namespace {

constexpr const char* fast_statement = "txp_gateway_accept_fast";
constexpr const char* accept_statement = "txp_gateway_accept_batch";
constexpr const char* outbox_statement = "txp_gateway_outbox_insert";
// A request that keeps losing the race for its key (it cannot, more than once) is refused.
constexpr int max_key_races = 3;
// Failed requests a group absorbs on the fast path (each costs a re-run of the group's
// work) before the rest runs with a savepoint per request.
constexpr int fast_path_failures = 2;
// How long an outcome for a transaction not (yet) counted in flight is remembered.
constexpr auto unmatched_memory = std::chrono::seconds(5);

struct batcher_metrics {
    metrics::counter& groups = metrics::global().get_counter(
        "txp_gateway_accept_groups_total", "Acceptance groups committed (requests per group = accepted / groups)");
    metrics::counter& requests = metrics::global().get_counter(
        "txp_gateway_accept_group_requests_total", "Requests that went through a committed acceptance group");
    metrics::counter& retried = metrics::global().get_counter(
        "txp_gateway_accept_group_retries_total", "Acceptance groups run again after a transient failure");
    metrics::counter& split = metrics::global().get_counter(
        "txp_gateway_accept_group_splits_total", "Acceptance groups whose commit failed and whose requests were run one by one");
    metrics::counter& failed = metrics::global().get_counter(
        "txp_gateway_accept_group_failures_total", "Acceptance groups that failed; every request in them got an error");
    metrics::counter& per_request = metrics::global().get_counter(
        "txp_gateway_accept_per_request_total",
        "Requests the set-based fast path left to the per-request path (replays, conflicts, errors, races for a key)");
    metrics::histogram& duration = metrics::global().get_histogram(
        "txp_gateway_accept_group_seconds", "Time to run and commit one acceptance group");
    metrics::gauge& in_flight = metrics::global().get_gauge(
        "txp_gateway_in_flight", "Transactions this gateway accepted whose outcome it has not seen yet (with TXP_MAX_IN_FLIGHT)");
    metrics::counter& held = metrics::global().get_counter(
        "txp_gateway_admission_waits_total", "Times acceptance waited for room under TXP_MAX_IN_FLIGHT");
    metrics::counter& overloaded = metrics::global().get_counter(
        "txp_gateway_overloaded_total", "Money requests answered 503 after waiting longer than TXP_ADMISSION_WAIT for room");
    metrics::counter& forgotten = metrics::global().get_counter(
        "txp_gateway_in_flight_forgotten_total", "Accepted transactions no outcome was heard of within the forget time");
};

batcher_metrics& bm() {
    static batcher_metrics m;
    return m;
}

}  // namespace

void prepare_acceptance_statements(pqxx::connection& c) {
    c.prepare(fast_statement,
              "SELECT idx, error_state, error_message, transaction_id::text, status, sequence, to_sequence, created, reason, "
              "wallet_id, to_wallet_id, currency, created_at FROM gateway.accept_fast($1::bigint[], $2::text[], $3::text[], "
              "$4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[])");
    c.prepare(accept_statement,
              "SELECT idx, error_state, error_message, transaction_id::text, status, sequence, to_sequence, created, reason, "
              "wallet_id, to_wallet_id, currency, created_at FROM gateway.accept_batch($1::bigint[], $2::text[], $3::text[], "
              "$4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::boolean)");
    c.prepare(outbox_statement,
              "INSERT INTO gateway.outbox (message_id, exchange, routing_key, body, type, correlation_id) "
              "SELECT m, 'txp.commands', 'ledger.transaction', b, $4, c FROM unnest($1::uuid[], $2::text[], $3::text[]) AS u(m, b, c)");
}

acceptance_batcher::acceptance_batcher(batcher_options opts)
    : opts_(std::move(opts)), pool_([&] {
          db::pool_options po;
          po.url = opts_.database_url;
          po.size = static_cast<std::size_t>(std::max(1, opts_.committers));
          po.application_name = "api-gateway-accept";
          po.on_connect = prepare_acceptance_statements;
          return po;
      }()) {}

acceptance_batcher::~acceptance_batcher() { stop(); }

void acceptance_batcher::start() {
    for (int i = 0; i < std::max(1, opts_.committers); ++i) threads_.emplace_back([this] { run(); });
}

void acceptance_batcher::stop() {
    {
        std::lock_guard lk(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    room_cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    // Without committers (never started) nothing may be left unanswered.
    std::deque<item> left;
    {
        std::lock_guard lk(mu_);
        left.swap(queue_);
    }
    for (auto& it : left) {
        it.done({std::nullopt, std::make_exception_ptr(db::db_error(db::failure_kind::transient, "the gateway is stopping"))});
    }
}

void acceptance_batcher::submit(acceptance a, completion done) {
    {
        std::unique_lock lk(mu_);
        if (!stopping_) {
            queue_.push_back({std::move(a), std::move(done), 0});
            lk.unlock();
            cv_.notify_one();
            return;
        }
    }
    done({std::nullopt, std::make_exception_ptr(db::db_error(db::failure_kind::transient, "the gateway is stopping"))});
}

std::size_t acceptance_batcher::queued() const {
    std::lock_guard lk(mu_);
    return queue_.size();
}

bool aging_ids::add(const std::string& id, clock::time_point now) {
    if (!added_.emplace(id, now).second) return false;
    order_.emplace_back(now, id);
    // Removed ids stay in order_ until they age out; keep it from growing without bound.
    if (order_.size() > 2 * added_.size() + 1024) {
        std::erase_if(order_, [&](const auto& e) {
            auto it = added_.find(e.second);
            return it == added_.end() || it->second != e.first;
        });
    }
    return true;
}

bool aging_ids::remove(const std::string& id) { return added_.erase(id) > 0; }

std::size_t aging_ids::forget_older(clock::time_point now, clock::duration age) {
    std::size_t forgotten = 0;
    while (!order_.empty() && now - order_.front().first >= age) {
        auto it = added_.find(order_.front().second);
        if (it != added_.end() && it->second == order_.front().first) {
            added_.erase(it);
            ++forgotten;
        }
        order_.pop_front();
    }
    return forgotten;
}

void acceptance_batcher::stop_admission() {
    {
        std::lock_guard lk(mu_);
        admission_off_ = true;
    }
    room_cv_.notify_all();
}

void acceptance_batcher::outcome_seen(const std::string& transaction_id) {
    if (opts_.max_in_flight == 0) return;
    bool wake = false;
    {
        std::lock_guard lk(mu_);
        if (!in_flight_.remove(transaction_id)) {
            // Another gateway's transaction, or (rarely) one of ours whose outcome came
            // between its commit and its registration: remembered for a moment, so that the
            // registration does not then count it for the forget time.
            auto now = clock::now();
            unmatched_.forget_older(now, unmatched_memory);
            unmatched_.add(transaction_id, now);
            return;
        }
        bm().in_flight.set(static_cast<std::int64_t>(in_flight_.size()));
        wake = room_waiters_ > 0 && room() >= enough_room();
    }
    if (wake) room_cv_.notify_all();
}

std::size_t acceptance_batcher::admit(clock::time_point now, std::vector<item>& overdue) {
    if (opts_.max_in_flight == 0 || stopping_ || admission_off_) return opts_.max_batch;
    // Forget the oldest accepted transactions whose outcome never came.
    bm().forgotten.inc(in_flight_.forget_older(now, opts_.forget_in_flight_after));
    bm().in_flight.set(static_cast<std::int64_t>(in_flight_.size()));
    if (room() >= enough_room()) return std::min(room(), opts_.max_batch);
    bool late = !queue_.empty() && now - queue_.front().queued_at >= opts_.max_admission_wait;
    if (!late) return 0;
    // The oldest request has waited long enough: whatever room there is goes to it (and the
    // ones after it); without any, the requests that waited too long are refused.
    if (room() > 0) return std::min(room(), opts_.max_batch);
    while (!queue_.empty() && now - queue_.front().queued_at >= opts_.max_admission_wait) {
        overdue.push_back(std::move(queue_.front()));
        queue_.pop_front();
    }
    return 0;
}

std::size_t acceptance_batcher::room() const {
    std::size_t used = in_flight_.size() + reserved_;
    return used < opts_.max_in_flight ? opts_.max_in_flight - used : 0;
}

// Room for a whole group (or for all that waits), so that a full pipeline is not fed one
// request per commit as outcomes trickle in.
std::size_t acceptance_batcher::enough_room() const {
    std::size_t group = std::max<std::size_t>(1, std::min(opts_.max_batch, opts_.max_in_flight / 8));
    return std::max<std::size_t>(1, std::min(group, queue_.size()));
}

void acceptance_batcher::run() {
    log::scope tag("", "acceptance-batcher");
    std::vector<item> group, overdue;
    for (;;) {
        group.clear();
        overdue.clear();
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return !queue_.empty() || stopping_; });
            if (queue_.empty()) return;  // stopping, and everything queued has been run
            auto take = admit(clock::now(), overdue);
            if (take == 0 && overdue.empty()) {
                // No room: wait for outcomes (outcome_seen wakes us), looking again now and
                // then to answer requests that have waited too long.
                bm().held.inc();
                ++room_waiters_;
                room_cv_.wait_for(lk, std::chrono::milliseconds(50));
                --room_waiters_;
                continue;
            }
            // No waiting for a group to fill: what arrived while the last group ran is the next.
            while (!queue_.empty() && group.size() < take) {
                group.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            reserved_ += group.size();
        }
        for (auto& it : overdue) {
            bm().overloaded.inc();
            try {
                it.done({std::nullopt, std::make_exception_ptr(overloaded_error(
                                           "the ledger is behind: " + std::to_string(opts_.max_in_flight) +
                                           " transactions accepted by this gateway are waiting for their outcome"))});
            } catch (const std::exception& e) {
                log::error("acceptance completion threw", {{"request_id", it.req.request_id}, {"error", e.what()}});
            }
        }
        if (group.empty()) continue;
        auto n = group.size();
        execute(group);
        bool wake = false;
        {
            std::lock_guard lk(mu_);
            reserved_ -= n;
            wake = room_waiters_ > 0;
        }
        if (wake) room_cv_.notify_all();
    }
}

void acceptance_batcher::execute(std::vector<item>& group) {
    thread_local std::mt19937 rng{std::random_device{}()};
    // Requests in wallet order: two committers locking the same wallets take them in the same
    // order more often (PostgreSQL detects the remaining deadlocks; the group is run again).
    std::stable_sort(group.begin(), group.end(), [](const item& a, const item& b) {
        return std::pair(a.req.wallet_id.value_or(0), a.req.user_id) < std::pair(b.req.wallet_id.value_or(0), b.req.user_id);
    });
    std::vector<acceptance_result> results(group.size());
    std::vector<bool> raced(group.size(), false);
    auto t0 = std::chrono::steady_clock::now();
    for (int attempt = 1;; ++attempt) {
        try {
            // A commit in doubt is retried like any transient failure: committed or not, running
            // the group again is safe, the idempotency keys make a committed request answer
            // with its transaction (not a second one).
            pool_.acquire().use([&](pqxx::connection& c) { run_group(c, group, results, raced); });
            bm().groups.inc();
            bm().requests.inc(group.size());
            bm().duration.observe_us(static_cast<std::uint64_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count()));
            break;
        } catch (const std::exception& e) {
            auto kind = db::classify(e);
            if (kind == db::failure_kind::permanent && group.size() > 1) {
                // Not a request's own failure (those stay in their subtransaction) and not
                // transient: perhaps one request breaks the commit. Alone, only it fails.
                bm().split.inc();
                log::warn("acceptance group failed; running its requests one by one",
                          {{"requests", group.size()}, {"sqlstate", db::sqlstate_of(e)},
                           {"error", std::string_view(e.what()).substr(0, 300)}});
                for (auto& it : group) {
                    std::vector<item> one;
                    one.push_back(std::move(it));
                    execute(one);
                }
                return;
            }
            if (kind == db::failure_kind::permanent || attempt >= opts_.attempts) {
                bm().failed.inc();
                log::error("acceptance group failed; its requests get an error",
                           {{"requests", group.size()}, {"attempts", attempt}, {"sqlstate", db::sqlstate_of(e)},
                            {"error", std::string_view(e.what()).substr(0, 300)}});
                auto err = std::make_exception_ptr(db::db_error(kind, e.what(), db::sqlstate_of(e)));
                for (auto& r : results) r = {std::nullopt, err};
                std::fill(raced.begin(), raced.end(), false);
                break;
            }
            bm().retried.inc();
            log::warn("acceptance group failed transiently; running it again",
                      {{"requests", group.size()}, {"attempt", attempt}, {"error", std::string_view(e.what()).substr(0, 200)}});
            std::uniform_int_distribution<int> jitter(2, 10 * attempt);
            std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
        }
    }

    // Count the transactions this group created towards the admission limit before anyone
    // hears of them (their outcome cannot come before the commit that just happened).
    if (opts_.max_in_flight > 0) {
        auto now = clock::now();
        std::lock_guard lk(mu_);
        for (const auto& r : results) {
            if (!r.outcome || !r.outcome->created) continue;
            if (unmatched_.remove(r.outcome->transaction_id)) continue;  // its outcome came already
            in_flight_.add(r.outcome->transaction_id, now);
        }
        bm().in_flight.set(static_cast<std::int64_t>(in_flight_.size()));
    }

    // Requests that lost the race for their key to another transaction go round again: the
    // winner has committed now, so they find it (a replay, or TX409).
    std::vector<item> again;
    for (std::size_t i = 0; i < group.size(); ++i) {
        if (raced[i] && group[i].key_races + 1 < max_key_races) {
            ++group[i].key_races;
            again.push_back(std::move(group[i]));
            continue;
        }
        if (raced[i]) {
            results[i] = {std::nullopt, std::make_exception_ptr(db::db_error(
                                            db::failure_kind::transient, "concurrent requests keep racing for this key", "40001"))};
        }
        try {
            group[i].done(std::move(results[i]));
        } catch (const std::exception& e) {
            log::error("acceptance completion threw", {{"request_id", group[i].req.request_id}, {"error", e.what()}});
        }
    }
    if (!again.empty()) {
        {
            std::lock_guard lk(mu_);
            for (auto it = again.rbegin(); it != again.rend(); ++it) queue_.push_front(std::move(*it));
        }
        cv_.notify_one();
    }
}

namespace {

// The requests at `which` as the columns gateway.accept_fast and gateway.accept_batch take.
struct request_columns {
    std::string users, scopes, keys, types, wallets, to_wallets, to_users, amounts, currencies, descriptions, metadata;

    template <typename Group>  // of acceptance_batcher's items, each with its acceptance in .req
    request_columns(const Group& group, const std::vector<std::size_t>& which) {
        std::vector<std::int64_t> user, amount;
        std::vector<std::string> scope, key, type;
        std::vector<std::optional<std::int64_t>> wallet, to_wallet, to_user;
        std::vector<std::optional<std::string>> currency, description, meta;
        for (auto i : which) {
            const auto& a = group[i].req;
            user.push_back(a.user_id);
            scope.push_back(a.scope);
            key.push_back(a.key);
            type.push_back(a.type);
            wallet.push_back(a.wallet_id);
            to_wallet.push_back(a.to_wallet_id);
            to_user.push_back(a.to_user_id);
            amount.push_back(a.amount);
            currency.push_back(a.currency);
            description.push_back(a.description);
            meta.push_back(a.metadata);
        }
        users = db::array_literal(user);
        scopes = db::array_literal(scope);
        keys = db::array_literal(key);
        types = db::array_literal(type);
        wallets = db::array_literal(wallet);
        to_wallets = db::array_literal(to_wallet);
        to_users = db::array_literal(to_user);
        amounts = db::array_literal(amount);
        currencies = db::array_literal(currency);
        descriptions = db::array_literal(description);
        metadata = db::array_literal(meta);
    }
};

// Row k of an accept_fast/accept_batch answer names request which[k - 1] (idx is 1-based).
std::size_t request_of(const pqxx::row& row, const std::vector<std::size_t>& which) {
    auto k = row[0].as<int>();
    if (k < 1 || static_cast<std::size_t>(k) > which.size()) throw std::logic_error("gateway acceptance named a request out of range");
    return which[static_cast<std::size_t>(k - 1)];
}

}  // namespace

void acceptance_batcher::run_group(pqxx::connection& conn, std::vector<item>& group, std::vector<acceptance_result>& results,
                                   std::vector<bool>& raced) {
    std::fill(raced.begin(), raced.end(), false);
    for (auto& r : results) r = {};
    auto fail_request = [&](std::size_t i, const std::string& state, const std::string& message) {
        if (state == "23505") raced[i] = true;
        else results[i].error = std::make_exception_ptr(db::db_error(db::failure_kind::permanent, message, state));
    };
    // The outbox rows of the transactions this group creates.
    std::vector<std::string> message_ids, bodies, correlation_ids;
    auto answer = [&](std::size_t i, const pqxx::row& row) {
        if (!row[1].is_null()) {
            fail_request(i, row[1].as<std::string>(), row[2].as<std::string>());
            return;
        }
        const auto& a = group[i].req;
        acceptance_outcome o;
        o.transaction_id = row[3].as<std::string>();
        o.status = row[4].as<std::string>();
        o.created = row[7].as<bool>();
        if (!row[8].is_null()) o.reason = row[8].as<std::string>();
        o.wallet_id = row[9].as<std::int64_t>();
        if (!row[10].is_null()) o.to_wallet_id = row[10].as<std::int64_t>();
        o.currency = row[11].as<std::string>();
        o.created_at = row[12].as<std::string>();
        if (o.created) {
            ledger::tx_message msg;
            msg.transaction_id = o.transaction_id;
            msg.type = a.type;
            msg.wallet_id = o.wallet_id;
            msg.to_wallet_id = o.to_wallet_id;
            msg.amount = a.amount;
            msg.currency = o.currency;
            msg.sequence = row[5].as<std::int64_t>();
            if (!row[6].is_null()) msg.to_sequence = row[6].as<std::int64_t>();
            msg.reference = a.key;
            msg.origin = "api";
            msg.accepted_at = o.created_at;
            message_ids.push_back(ids::uuid_v7());  // time-ordered: the inbox index grows at its edge
            bodies.push_back(msg.to_json());
            correlation_ids.push_back(a.request_id);
        }
        results[i].outcome = std::move(o);
    };

    pqxx::work w(conn);
    // The requests not answered yet, by position in `group`.
    std::vector<std::size_t> pending(group.size());
    std::iota(pending.begin(), pending.end(), std::size_t{0});

    // Fast path: the plainly new and valid requests, set-based, in one statement.
    {
        request_columns c(group, pending);
        auto rows = w.exec_prepared(fast_statement, c.users, c.scopes, c.keys, c.types, c.wallets, c.to_wallets, c.to_users,
                                    c.amounts, c.currencies, c.descriptions, c.metadata);
        std::vector<bool> answered(group.size(), false);
        for (const auto& row : rows) {
            auto i = request_of(row, pending);
            answer(i, row);
            answered[i] = true;
        }
        std::erase_if(pending, [&](std::size_t i) { return answered[i]; });
    }

    // The rest one by one (replays, conflicts, errors), each failure isolated from the others.
    if (!pending.empty()) bm().per_request.inc(pending.size());
    int failures = 0;
    while (!pending.empty()) {
        // After a few failures the rest runs with a savepoint per request (see the migration).
        bool isolate = failures >= fast_path_failures;
        request_columns c(group, pending);
        auto rows = w.exec_prepared(accept_statement, c.users, c.scopes, c.keys, c.types, c.wallets, c.to_wallets, c.to_users,
                                    c.amounts, c.currencies, c.descriptions, c.metadata, isolate);
        if (!isolate && !rows.empty() && !rows[rows.size() - 1][1].is_null()) {
            // One request failed and the call kept nothing: answer it, run the others again.
            const auto& last = rows[rows.size() - 1];
            auto i = request_of(last, pending);
            fail_request(i, last[1].as<std::string>(), last[2].as<std::string>());
            std::erase(pending, i);
            ++failures;
            continue;
        }
        if (rows.size() != pending.size()) throw std::logic_error("gateway.accept_batch did not answer every request");
        for (const auto& row : rows) answer(request_of(row, pending), row);
        break;
    }

    if (!message_ids.empty()) {
        w.exec_prepared(outbox_statement, db::array_literal(message_ids), db::array_literal(bodies),
                        db::array_literal(correlation_ids), std::string(ledger::message_type));
    }
    w.commit();
}

}  // namespace txp::gateway

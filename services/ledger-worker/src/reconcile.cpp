// `reconcile` checks the ledger's invariants on the live database; `seed-demo` creates the
// demo wallets 101-105 with an opening deposit (balanced like any other transaction).
#include "ledger.hpp"

#include "txp/common/ids.hpp"

namespace txp::ledger {

void seed_demo(db::pool& pool, std::int64_t opening_balance) {
    db::with_transaction(pool, [&](pqxx::work& w) {
        w.exec("LOCK TABLE ledger.wallets IN SHARE ROW EXCLUSIVE MODE");
        for (std::int64_t id = 101; id <= 105; ++id) {
            auto exists = w.exec_params("SELECT 1 FROM ledger.wallets WHERE id = $1", id);
            if (!exists.empty()) continue;
            std::string tx = ids::uuid_v4();
            w.exec_params(
                "INSERT INTO ledger.wallets (id, owner_id, currency, balance, next_apply_seq) VALUES ($1, $2, 'USD', $3, 2)",
                id, id - 100, opening_balance);
            w.exec_params("INSERT INTO ledger.wallet_sequences (wallet_id, next_seq) VALUES ($1, 2)", id);
            w.exec_params(
                "INSERT INTO ledger.transactions (id, type, wallet_id, amount, currency, sequence, idempotency_scope, "
                "idempotency_key, request_hash, status, description, origin, balance_after, applied_by, finished_at) "
                "VALUES ($1::uuid, 'deposit', $2::bigint, $3, 'USD', 1, 'seed', 'opening-balance-' || $2::text, 'seed', 'completed', "
                "'Opening balance', 'seed', $3, 'seed', now())",
                tx, id, opening_balance);
            w.exec_params(
                "INSERT INTO ledger.entries (transaction_id, wallet_id, system_account, amount, currency) VALUES "
                "($1::uuid, $2, NULL, $3, 'USD'), ($1::uuid, NULL, 'external:bank', -$3::bigint, 'USD')",
                tx, id, opening_balance);
        }
    });
}

std::vector<std::string> reconcile(db::pool& pool, std::vector<std::string>& notes) {
    std::vector<std::string> problems;
    auto l = pool.acquire();
    // One consistent snapshot for every check.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> r(*l);
    auto each = [&](const char* sql, auto&& describe) {
        for (const auto& row : r.exec(sql)) problems.push_back(describe(row));
    };
    each("SELECT w.id, w.balance, coalesce(sum(e.amount), 0) FROM ledger.wallets w "
         "LEFT JOIN ledger.entries e ON e.wallet_id = w.id GROUP BY w.id HAVING w.balance <> coalesce(sum(e.amount), 0)",
         [](const pqxx::row& row) {
             return "wallet " + row[0].as<std::string>() + ": balance " + row[1].as<std::string>() +
                    " differs from the sum of its entries " + row[2].as<std::string>();
         });
    each("SELECT currency, sum(amount) FROM ledger.entries GROUP BY currency HAVING sum(amount) <> 0",
         [](const pqxx::row& row) {
             return "entries in " + row[0].as<std::string>() + " sum to " + row[1].as<std::string>() + ", not zero";
         });
    each("SELECT transaction_id, sum(amount) FROM ledger.entries GROUP BY transaction_id HAVING sum(amount) <> 0",
         [](const pqxx::row& row) {
             return "transaction " + row[0].as<std::string>() + ": its entries sum to " + row[1].as<std::string>();
         });
    // The insert trigger refuses these; checked again here because it is not a foreign key.
    each("SELECT e.id, e.transaction_id FROM ledger.entries e WHERE NOT EXISTS (SELECT 1 FROM ledger.transactions t "
         "WHERE t.id = e.transaction_id) OR (e.wallet_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger.wallets w "
         "WHERE w.id = e.wallet_id)) OR (e.system_account IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
         "ledger.system_accounts s WHERE s.code = e.system_account))",
         [](const pqxx::row& row) {
             return "entry " + row[0].as<std::string>() + " (transaction " + row[1].as<std::string>() +
                    ") refers to a missing transaction, wallet or system account";
         });
    each("SELECT id, balance, overdraft_limit FROM ledger.wallets WHERE balance < -overdraft_limit AND NOT overdrawn",
         [](const pqxx::row& row) {
             return "wallet " + row[0].as<std::string>() + ": balance " + row[1].as<std::string>() +
                    " is below its limit -" + row[2].as<std::string>() + " without a bank reversal";
         });
    each("SELECT t.id, t.status, count(e.id) FROM ledger.transactions t LEFT JOIN ledger.entries e ON e.transaction_id = t.id "
         "GROUP BY t.id HAVING (t.status = 'completed') <> (count(e.id) > 0)",
         [](const pqxx::row& row) {
             return "transaction " + row[0].as<std::string>() + " is " + row[1].as<std::string>() + " with " +
                    row[2].as<std::string>() + " entries";
         });
    each("SELECT t.id, t.wallet_id, t.sequence, w.next_apply_seq FROM ledger.transactions t JOIN ledger.wallets w "
         "ON w.id = t.wallet_id WHERE t.status = 'queued' AND t.sequence < w.next_apply_seq",
         [](const pqxx::row& row) {
             return "transaction " + row[0].as<std::string>() + " is still queued but wallet " + row[1].as<std::string>() +
                    " already applied past its sequence " + row[2].as<std::string>();
         });
    each("SELECT w.id, s.next_seq, (SELECT count(*) FROM ledger.transactions t WHERE t.wallet_id = w.id) + "
         "(SELECT count(*) FROM ledger.transactions t WHERE t.to_wallet_id = w.id) FROM ledger.wallets w "
         "JOIN ledger.wallet_sequences s ON s.wallet_id = w.id "
         "WHERE s.next_seq - 1 <> (SELECT count(*) FROM ledger.transactions t WHERE t.wallet_id = w.id) + "
         "(SELECT count(*) FROM ledger.transactions t WHERE t.to_wallet_id = w.id)",
         [](const pqxx::row& row) {
             return "wallet " + row[0].as<std::string>() + ": acceptance sequence is at " + row[1].as<std::string>() +
                    " but it has " + row[2].as<std::string>() + " transactions (sequence not gap-free)";
         });
    for (const auto& row : r.exec("SELECT id, balance, overdraft_limit FROM ledger.wallets WHERE overdrawn ORDER BY id")) {
        notes.push_back("wallet " + row[0].as<std::string>() + " is overdrawn by a bank reversal: balance " +
                        row[1].as<std::string>() + ", limit -" + row[2].as<std::string>());
    }
    r.commit();
    return problems;
}

}  // namespace txp::ledger

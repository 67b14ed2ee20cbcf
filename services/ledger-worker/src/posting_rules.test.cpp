// The posting rules without a database: every transaction type, its postings, its refusals.
#include "posting_rules.hpp"

#include <catch2/catch.hpp>

#include <limits>
#include <numeric>

using namespace txp::ledger;

namespace {

wallet_balance wallet(std::int64_t id, std::int64_t balance, std::int64_t limit = 0, std::string currency = "USD") {
    return {id, std::move(currency), true, balance, limit, false};
}

std::int64_t sum(const rule_result& r) {
    return std::accumulate(r.legs.begin(), r.legs.end(), std::int64_t{0}, [](std::int64_t s, const leg& l) { return s + l.amount; });
}

constexpr auto max64 = std::numeric_limits<std::int64_t>::max();

}  // namespace

TEST_CASE("a deposit credits the wallet and debits external:bank", "[ledger][rules]") {
    auto w = wallet(1, 100);
    auto r = apply_rules({"deposit", 250, "USD"}, w, nullptr, std::nullopt);
    REQUIRE_FALSE(r.rejected);
    CHECK(w.balance == 350);
    REQUIRE(r.legs.size() == 2);
    CHECK(r.legs[0].wallet_id == std::optional<std::int64_t>(1));
    CHECK(r.legs[0].amount == 250);
    CHECK(r.legs[1].system_account == std::optional<std::string>("external:bank"));
    CHECK(r.legs[1].amount == -250);
    CHECK(sum(r) == 0);
}

TEST_CASE("withdrawals and payments debit the wallet, within its limit", "[ledger][rules]") {
    SECTION("a withdrawal goes to external:bank") {
        auto w = wallet(1, 100);
        auto r = apply_rules({"withdrawal", 100, "USD"}, w, nullptr, std::nullopt);
        REQUIRE_FALSE(r.rejected);
        CHECK(w.balance == 0);
        CHECK(r.legs[1].system_account == std::optional<std::string>("external:bank"));
        CHECK(sum(r) == 0);
    }
    SECTION("a payment goes to external:merchant") {
        auto w = wallet(1, 100);
        auto r = apply_rules({"payment", 40, "USD"}, w, nullptr, std::nullopt);
        REQUIRE_FALSE(r.rejected);
        CHECK(w.balance == 60);
        CHECK(r.legs[0].amount == -40);
        CHECK(r.legs[1].system_account == std::optional<std::string>("external:merchant"));
        CHECK(r.legs[1].amount == 40);
    }
    SECTION("one minor unit beyond the balance is insufficient funds, and changes nothing") {
        auto w = wallet(1, 100);
        auto r = apply_rules({"withdrawal", 101, "USD"}, w, nullptr, std::nullopt);
        CHECK(r.rejected == std::optional<std::string>("insufficient_funds"));
        CHECK(r.legs.empty());
        CHECK(w.balance == 100);
    }
    SECTION("an overdraft limit lets the balance go down to minus the limit, not further") {
        auto w = wallet(1, 100, 50);
        CHECK_FALSE(apply_rules({"payment", 150, "USD"}, w, nullptr, std::nullopt).rejected);
        CHECK(w.balance == -50);
        CHECK_FALSE(w.overdrawn);  // within its limit
        auto r = apply_rules({"payment", 1, "USD"}, w, nullptr, std::nullopt);
        CHECK(r.rejected == std::optional<std::string>("insufficient_funds"));
        CHECK(w.balance == -50);
    }
    SECTION("an amount that would overflow below the minimum is insufficient funds, not a wrap-around") {
        auto w = wallet(1, std::numeric_limits<std::int64_t>::min() + 10, max64);
        auto r = apply_rules({"withdrawal", 100, "USD"}, w, nullptr, std::nullopt);
        CHECK(r.rejected == std::optional<std::string>("insufficient_funds"));
    }
}

TEST_CASE("refusals are business outcomes that change nothing", "[ledger][rules]") {
    SECTION("a closed wallet takes nothing in and lets nothing out") {
        for (const char* type : {"deposit", "withdrawal", "payment"}) {
            auto w = wallet(1, 100);
            w.active = false;
            auto r = apply_rules({type, 10, "USD"}, w, nullptr, std::nullopt);
            CHECK(r.rejected == std::optional<std::string>("wallet_closed"));
            CHECK(w.balance == 100);
        }
    }
    SECTION("another currency than the wallet's") {
        for (const char* type : {"deposit", "withdrawal", "payment"}) {
            auto w = wallet(1, 100);
            auto r = apply_rules({type, 10, "EUR"}, w, nullptr, std::nullopt);
            CHECK(r.rejected == std::optional<std::string>("currency_mismatch"));
            CHECK(w.balance == 100);
        }
    }
    SECTION("a deposit that would overflow the balance") {
        auto w = wallet(1, max64 - 5);
        auto r = apply_rules({"deposit", 6, "USD"}, w, nullptr, std::nullopt);
        CHECK(r.rejected == std::optional<std::string>("balance_overflow"));
        CHECK(w.balance == max64 - 5);
    }
    SECTION("an overdrawn wallet refuses outgoing money until it is back within its limit") {
        auto w = wallet(1, -20);
        w.overdrawn = true;
        CHECK(apply_rules({"payment", 1, "USD"}, w, nullptr, std::nullopt).rejected ==
              std::optional<std::string>("wallet_overdrawn"));
        CHECK(w.overdrawn);
        CHECK_FALSE(apply_rules({"deposit", 20, "USD"}, w, nullptr, std::nullopt).rejected);
        CHECK(w.balance == 0);
        CHECK_FALSE(w.overdrawn);
        // No longer overdrawn: refused (if at all) for its balance, like any wallet.
        CHECK(apply_rules({"payment", 1, "USD"}, w, nullptr, std::nullopt).rejected ==
              std::optional<std::string>("insufficient_funds"));
    }
}

TEST_CASE("a transfer moves money between two wallets of one currency", "[ledger][rules]") {
    auto a = wallet(1, 100);
    auto b = wallet(2, 5);
    auto r = apply_rules({"transfer", 60, "USD"}, a, &b, std::nullopt);
    REQUIRE_FALSE(r.rejected);
    CHECK(a.balance == 40);
    CHECK(b.balance == 65);
    REQUIRE(r.legs.size() == 2);
    CHECK(r.legs[0].wallet_id == std::optional<std::int64_t>(1));
    CHECK(r.legs[1].wallet_id == std::optional<std::int64_t>(2));
    CHECK(sum(r) == 0);
    SECTION("beyond the source's balance") {
        CHECK(apply_rules({"transfer", 41, "USD"}, a, &b, std::nullopt).rejected ==
              std::optional<std::string>("insufficient_funds"));
        CHECK(a.balance == 40);
        CHECK(b.balance == 65);
    }
    SECTION("to a wallet of another currency") {
        auto e = wallet(3, 0, 0, "EUR");
        CHECK(apply_rules({"transfer", 1, "USD"}, a, &e, std::nullopt).rejected ==
              std::optional<std::string>("currency_mismatch"));
        CHECK(a.balance == 40);
    }
    SECTION("to a closed wallet") {
        b.active = false;
        CHECK(apply_rules({"transfer", 1, "USD"}, a, &b, std::nullopt).rejected == std::optional<std::string>("wallet_closed"));
    }
    SECTION("that would overflow the destination") {
        b.balance = max64;
        CHECK(apply_rules({"transfer", 1, "USD"}, a, &b, std::nullopt).rejected == std::optional<std::string>("balance_overflow"));
        CHECK(a.balance == 40);
    }
}

TEST_CASE("a reversal records a fact: it applies below the limit and marks the wallet overdrawn", "[ledger][rules]") {
    SECTION("a reversed deposit takes the money back out") {
        auto w = wallet(1, 30);
        auto r = apply_rules({"reversal", 100, "USD"}, w, nullptr, reversed_transaction{"deposit", "completed"});
        REQUIRE_FALSE(r.rejected);
        CHECK(w.balance == -70);
        CHECK(w.overdrawn);
        CHECK(r.legs[0].amount == -100);
        CHECK(r.legs[1].system_account == std::optional<std::string>("external:bank"));
        CHECK(r.legs[1].amount == 100);
    }
    SECTION("a reversed payment gives the money back from external:merchant") {
        auto w = wallet(1, 0);
        auto r = apply_rules({"reversal", 40, "USD"}, w, nullptr, reversed_transaction{"payment", "completed"});
        REQUIRE_FALSE(r.rejected);
        CHECK(w.balance == 40);
        CHECK(r.legs[1].system_account == std::optional<std::string>("external:merchant"));
        CHECK(r.legs[1].amount == -40);
    }
    SECTION("a reversed transfer moves the money back, even below the destination's limit") {
        auto a = wallet(1, 0);
        auto b = wallet(2, 10);
        auto r = apply_rules({"reversal", 25, "USD"}, a, &b, reversed_transaction{"transfer", "completed"});
        REQUIRE_FALSE(r.rejected);
        CHECK(a.balance == 25);
        CHECK(b.balance == -15);
        CHECK(b.overdrawn);
        CHECK(sum(r) == 0);
    }
    SECTION("only a completed transaction can be reversed") {
        for (const char* status : {"queued", "rejected", "failed"}) {
            auto w = wallet(1, 30);
            auto r = apply_rules({"reversal", 10, "USD"}, w, nullptr, reversed_transaction{"deposit", status});
            CHECK(r.rejected == std::optional<std::string>("not_reversible"));
            CHECK(w.balance == 30);
        }
        auto w = wallet(1, 30);
        CHECK(apply_rules({"reversal", 10, "USD"}, w, nullptr, std::nullopt).rejected ==
              std::optional<std::string>("not_reversible"));
    }
}

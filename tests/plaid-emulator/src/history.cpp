// Deterministic generation of sandbox accounts and transaction histories.
#include "model.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <ctime>

namespace txp::plaid_emulator {

namespace {

struct merchant {
    const char* name;
    const char* merchant_name;  // nullptr: none
    const char* channel;
    const char* type;
    const char* primary;
    const char* detailed;
    std::int64_t min_cents, max_cents;  // Plaid sign
    const char* city;
    const char* region;
};

// Names from Plaid's sandbox data, categories from its personal finance taxonomy.
constexpr std::array<merchant, 14> merchants{{
    {"Uber 063015 SF**POOL**", "Uber", "online", "special", "TRANSPORTATION", "TRANSPORTATION_TAXIS_AND_RIDE_SHARES", 500, 4500, nullptr, nullptr},
    {"United Airlines", "United Airlines", "in store", "special", "TRAVEL", "TRAVEL_FLIGHTS", 9000, 65000, "Chicago", "IL"},
    {"McDonald's", "McDonald's", "in store", "place", "FOOD_AND_DRINK", "FOOD_AND_DRINK_FAST_FOOD", 300, 2500, "San Francisco", "CA"},
    {"Starbucks", "Starbucks", "in store", "place", "FOOD_AND_DRINK", "FOOD_AND_DRINK_COFFEE", 250, 1200, "San Francisco", "CA"},
    {"SparkFun", nullptr, "in store", "place", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_ELECTRONICS", 1500, 30000, "Boulder", "CO"},
    {"Tectra Inc", nullptr, "in store", "place", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_OTHER_GENERAL_MERCHANDISE", 2000, 50000, "Austin", "TX"},
    {"KFC", "KFC", "in store", "place", "FOOD_AND_DRINK", "FOOD_AND_DRINK_FAST_FOOD", 400, 3000, "Seattle", "WA"},
    {"Madison Bicycle Shop", "Madison Bicycle Shop", "in store", "place", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_SPORTING_GOODS", 2500, 120000, "Madison", "WI"},
    {"Touchstone Climbing", nullptr, "in store", "place", "PERSONAL_CARE", "PERSONAL_CARE_GYMS_AND_FITNESS_CENTERS", 2000, 9000, "Berkeley", "CA"},
    {"Amazon", "Amazon", "online", "digital", "GENERAL_MERCHANDISE", "GENERAL_MERCHANDISE_ONLINE_MARKETPLACES", 799, 25000, nullptr, nullptr},
    {"Netflix", "Netflix", "online", "digital", "ENTERTAINMENT", "ENTERTAINMENT_TV_AND_MOVIES", 1549, 1549, nullptr, nullptr},
    {"Whole Foods Market", "Whole Foods", "in store", "place", "FOOD_AND_DRINK", "FOOD_AND_DRINK_GROCERIES", 1200, 22000, "Oakland", "CA"},
    // Money in: negative amounts.
    {"PAYROLL DIRECT DEP ACME CORP", nullptr, "other", "special", "INCOME", "INCOME_WAGES", -450000, -180000, nullptr, nullptr},
    {"INTRST PYMNT", nullptr, "other", "special", "INCOME", "INCOME_INTEREST_EARNED", -900, -1, nullptr, nullptr},
}};

std::int64_t pick(std::mt19937_64& rng, std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

transaction_state make(item_state& item, std::mt19937_64& rng, std::mt19937_64& id_rng, int days_ago, bool pending) {
    // Weighted: mostly purchases, a payroll deposit now and then.
    std::int64_t r = pick(rng, 0, 99);
    const merchant& m = r < 6 ? merchants[12] : r < 8 ? merchants[13] : merchants[static_cast<std::size_t>(pick(rng, 0, 11))];
    transaction_state t;
    t.transaction_id = random_id(id_rng);
    // Checking carries most; the credit card some purchases; savings the interest.
    std::size_t acct = 0;
    if (&m == &merchants[13]) acct = 1;
    else if (m.min_cents > 0 && pick(rng, 0, 3) == 0) acct = 3;
    t.account_id = item.accounts[acct].account_id;
    t.cents = pick(rng, m.min_cents, m.max_cents);
    if (t.cents == 0) t.cents = 1;
    t.date = date_days_ago(days_ago);
    t.authorized_date = date_days_ago(days_ago + (pending ? 0 : static_cast<int>(pick(rng, 0, 2))));
    t.name = m.name;
    if (m.merchant_name) t.merchant_name = m.merchant_name;
    t.payment_channel = m.channel;
    t.transaction_type = m.type;
    t.pfc_primary = m.primary;
    t.pfc_detailed = m.detailed;
    t.pending = pending;
    if (m.city) {
        t.city = m.city;
        t.region = m.region;
    }
    return t;
}

}  // namespace

std::string random_id(std::mt19937_64& rng, std::size_t len) {
    static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    std::string s;
    for (std::size_t i = 0; i < len; ++i) s += alphabet[rng() % 62];
    return s;
}

std::string cents_text(std::int64_t cents) {
    bool neg = cents < 0;
    std::uint64_t a = neg ? static_cast<std::uint64_t>(-(cents + 1)) + 1 : static_cast<std::uint64_t>(cents);
    std::string out;
    if (neg) out += '-';
    out += std::to_string(a / 100);
    auto frac = a % 100;
    if (frac != 0) {
        out += '.';
        out += static_cast<char>('0' + frac / 10);
        if (frac % 10) out += static_cast<char>('0' + frac % 10);
    }
    return out;
}

std::string date_days_ago(int days) {
    auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() - std::chrono::hours(24) * days);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[16];
    std::strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    return buf;
}

std::vector<account_state> sandbox_accounts(std::mt19937_64& id_rng) {
    std::vector<account_state> a(4);
    a[0] = {random_id(id_rng), "Plaid Checking", "Plaid Gold Standard 0% Interest Checking", "0000", "depository", "checking", 10000, 11000, std::nullopt};
    a[1] = {random_id(id_rng), "Plaid Saving", "Plaid Silver Standard 0.1% Interest Saving", "1111", "depository", "savings", 20000, 21000, std::nullopt};
    a[2] = {random_id(id_rng), "Plaid CD", "Plaid Bronze Standard 0.2% Interest CD", "2222", "depository", "cd", std::nullopt, 100000, std::nullopt};
    a[3] = {random_id(id_rng), "Plaid Credit Card", "Plaid Diamond 12.5% APR Interest Credit Card", "3333", "credit", "credit card", std::nullopt, 41000, 200000};
    return a;
}

void generate_history(item_state& item, std::mt19937_64& rng, std::mt19937_64& id_rng, int n) {
    // Dates spread over two years, oldest first; the most recent ~3% (at least 2) pending.
    std::vector<int> days;
    days.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) days.push_back(static_cast<int>(pick(rng, 1, 729)));
    std::sort(days.begin(), days.end(), std::greater<int>());
    int pending = std::max(2, n * 3 / 100);
    for (int i = 0; i < n; ++i) {
        bool is_pending = i >= n - pending;
        auto t = make(item, rng, id_rng, is_pending ? std::min(days[static_cast<std::size_t>(i)], 3) : days[static_cast<std::size_t>(i)], is_pending);
        auto id = t.transaction_id;
        item.transactions.emplace(id, std::move(t));
        item.record(change_kind::added, id);
    }
}

transaction_state new_transaction(item_state& item, std::mt19937_64& rng, std::mt19937_64& id_rng, bool pending) {
    auto t = make(item, rng, id_rng, 0, pending);
    if (t.account_id == item.accounts[1].account_id) t.account_id = item.accounts[0].account_id;
    return t;
}

}  // namespace txp::plaid_emulator

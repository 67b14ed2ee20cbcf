// Prints the txp broker topology as RabbitMQ definitions JSON, for the queue type given as
// the argument (classic or quorum; default TXP_QUEUE_TYPE, else quorum). Regenerate the
// committed files with:
//   txp-export-definitions quorum  > deploy/rabbitmq/definitions.json
//   txp-export-definitions classic > deploy/rabbitmq/definitions-classic.json
#include <iostream>
#include <stdexcept>

#include "txp/amqp/topology.hpp"

int main(int argc, char** argv) {
    try {
        if (argc > 2) throw std::invalid_argument("usage: txp-export-definitions [classic|quorum]");
        auto type = argc == 2 ? txp::amqp::parse_queue_type(argv[1]) : txp::amqp::queue_type_from_env();
        std::cout << txp::amqp::txp_topology(type).to_definitions_json();
    } catch (const std::exception& e) {
        std::cerr << "txp-export-definitions: " << e.what() << "\n";
        return 2;
    }
    return std::cout.good() ? 0 : 1;
}

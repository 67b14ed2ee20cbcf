// Prints the txp broker topology as RabbitMQ definitions JSON; regenerate the committed
// file with: txp-export-definitions > deploy/rabbitmq/definitions.json
#include <iostream>

#include "txp/amqp/topology.hpp"

int main() {
    std::cout << txp::amqp::txp_topology().to_definitions_json();
    return std::cout.good() ? 0 : 1;
}

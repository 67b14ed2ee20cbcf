// Everything of txp::amqp in one include.
#pragma once

#include "txp/amqp/admin.hpp"
#include "txp/amqp/consumer.hpp"
#include "txp/amqp/failure_routing.hpp"
#include "txp/amqp/message.hpp"
#include "txp/amqp/publisher.hpp"
#include "txp/amqp/topology.hpp"

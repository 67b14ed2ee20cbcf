// Everything of txp::http in one include.
#pragma once

#include "txp/http/client.hpp"
#include "txp/http/message.hpp"
#include "txp/http/ops.hpp"
#include "txp/http/server.hpp"

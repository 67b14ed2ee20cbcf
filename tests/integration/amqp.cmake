# txp::amqp integration tests against the real broker (included from tests/CMakeLists.txt).
txp_unit_test(amqp_integration_tests
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/amqp_support.cpp
    ${CMAKE_CURRENT_LIST_DIR}/amqp_publish_consume_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/amqp_retry_test.cpp
    ${CMAKE_CURRENT_LIST_DIR}/amqp_reconnect_test.cpp
  LIBS txp::amqp txp::testing txp::rapidjson Threads::Threads
  LABELS integration)
target_compile_definitions(amqp_integration_tests PRIVATE
  TXP_AMQP_DEFINITIONS_DIR="${TXP_SOURCE_DIR}/deploy/rabbitmq")
# Stops and starts the whole broker: never alongside other tests.
add_test(NAME amqp_broker_restart_tests COMMAND amqp_integration_tests "[broker-restart]")
set_tests_properties(amqp_broker_restart_tests PROPERTIES LABELS "integration" RUN_SERIAL TRUE TIMEOUT 600)

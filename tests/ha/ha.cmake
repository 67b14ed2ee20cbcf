# The HA topology under load and faults (included from tests/CMakeLists.txt): a RabbitMQ
# cluster of 3 nodes and Patroni-managed PostgreSQL, on private ports, started and stopped by
# the test itself (scripts/lib/ha.sh). Kills a broker node and the database primary: alone,
# never beside other tests (it also takes both cores for a couple of minutes).
add_test(NAME ha_failover_test
  COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/ha_failover_test.sh ${CMAKE_BINARY_DIR})
set_tests_properties(ha_failover_test PROPERTIES LABELS "ha;fault" RUN_SERIAL TRUE TIMEOUT 900 SKIP_RETURN_CODE 77)

# amqp_bench: txp::amqp throughput next to raw rabbitmq-c (a program, not a ctest test).
add_executable(amqp_bench ${CMAKE_CURRENT_LIST_DIR}/amqp_bench.cpp)
target_link_libraries(amqp_bench PRIVATE txp::amqp rabbitmq::rabbitmq Threads::Threads)
txp_target_defaults(amqp_bench)

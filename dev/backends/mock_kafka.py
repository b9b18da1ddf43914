#!/usr/bin/env python3
"""Launch librdkafka's mock Kafka cluster (Debian package librdkafka1) through its C API.

A real Kafka-protocol broker for local runs and tests, with no JVM and no download: kafkajs
produces to it and consumes from it with consumer groups and rebalances. Its Metadata names no
usable controller, so topics are created here (or by auto-creation), never with Kafka admin
requests, and the idempotent producer cannot be used against it.

Usage: mock_kafka.py [BROKER_COUNT]        (default 1)

stdout line 1:  BOOTSTRAP host:port,host:port,...
then one reply line per stdin command:
  create <topic> <partitions> <replication>  -> rd_kafka_mock_topic_create
  down <broker_id>                           -> rd_kafka_mock_broker_set_down (-1 = all)
  up <broker_id>                             -> rd_kafka_mock_broker_set_up   (-1 = all)
  leader <topic> <partition> <broker_id>     -> rd_kafka_mock_partition_set_leader
  error <api_key> <error_code> <count>       -> rd_kafka_mock_push_request_errors: the next
                                                <count> requests of that API fail with it
  ping                                       -> OK
replies: "OK" or "ERR <reason>".
Exits cleanly (destroys the cluster) on stdin EOF, SIGTERM, SIGINT or "quit".
The mock brokers listen on 127.0.0.1 (loopback) on ephemeral ports.
"""
import ctypes
import ctypes.util
import signal
import sys


def load_librdkafka():
    for name in ("librdkafka.so.1", ctypes.util.find_library("rdkafka")):
        if not name:
            continue
        try:
            return ctypes.CDLL(name)
        except OSError:
            pass
    sys.stderr.write("mock_kafka: cannot load librdkafka.so.1 "
                     "(apt-get install librdkafka1)\n")
    sys.exit(2)


lib = load_librdkafka()
c_vp, c_int, c_char_p, c_int32, c_size_t = (
    ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int32, ctypes.c_size_t)

lib.rd_kafka_version_str.restype = c_char_p
lib.rd_kafka_version_str.argtypes = []
lib.rd_kafka_err2str.restype = c_char_p
lib.rd_kafka_err2str.argtypes = [c_int]
lib.rd_kafka_conf_new.restype = c_vp
lib.rd_kafka_conf_new.argtypes = []
lib.rd_kafka_conf_set.restype = c_int  # rd_kafka_conf_res_t, 0 = OK
lib.rd_kafka_conf_set.argtypes = [c_vp, c_char_p, c_char_p, c_char_p, c_size_t]
lib.rd_kafka_conf_destroy.restype = None
lib.rd_kafka_conf_destroy.argtypes = [c_vp]
lib.rd_kafka_new.restype = c_vp  # takes ownership of conf on success
lib.rd_kafka_new.argtypes = [c_int, c_vp, c_char_p, c_size_t]
lib.rd_kafka_destroy.restype = None
lib.rd_kafka_destroy.argtypes = [c_vp]
lib.rd_kafka_mock_cluster_new.restype = c_vp
lib.rd_kafka_mock_cluster_new.argtypes = [c_vp, c_int]
lib.rd_kafka_mock_cluster_destroy.restype = None
lib.rd_kafka_mock_cluster_destroy.argtypes = [c_vp]
lib.rd_kafka_mock_cluster_bootstraps.restype = c_char_p
lib.rd_kafka_mock_cluster_bootstraps.argtypes = [c_vp]
lib.rd_kafka_mock_topic_create.restype = c_int
lib.rd_kafka_mock_topic_create.argtypes = [c_vp, c_char_p, c_int, c_int]
lib.rd_kafka_mock_broker_set_down.restype = c_int
lib.rd_kafka_mock_broker_set_down.argtypes = [c_vp, c_int32]
lib.rd_kafka_mock_broker_set_up.restype = c_int
lib.rd_kafka_mock_broker_set_up.argtypes = [c_vp, c_int32]
lib.rd_kafka_mock_partition_set_leader.restype = c_int
lib.rd_kafka_mock_partition_set_leader.argtypes = [c_vp, c_char_p, c_int32, c_int32]
# Variadic: (cluster, ApiKey, cnt, err, err, ...); the arguments are passed with explicit types.
lib.rd_kafka_mock_push_request_errors.restype = None

RD_KAFKA_PRODUCER = 0


class Stop(Exception):
    pass


def _on_signal(signum, frame):
    raise Stop()


def err_reply(err):
    return "OK" if err == 0 else "ERR " + lib.rd_kafka_err2str(err).decode()


def main():
    brokers = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    if brokers < 1:
        sys.stderr.write("mock_kafka: broker count must be >= 1\n")
        return 2

    errstr = ctypes.create_string_buffer(512)
    conf = lib.rd_kafka_conf_new()
    # The handle only hosts the mock cluster; keep its own logging quiet
    # (3 = errors only) so stderr is not flooded.
    for k, v in (("log_level", "3"),):
        if lib.rd_kafka_conf_set(conf, k.encode(), v.encode(), errstr, 512) != 0:
            sys.stderr.write("mock_kafka: conf %s: %s\n" % (k, errstr.value.decode()))
    rk = lib.rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, 512)
    if not rk:
        lib.rd_kafka_conf_destroy(conf)
        sys.stderr.write("mock_kafka: rd_kafka_new: %s\n" % errstr.value.decode())
        return 1
    mc = lib.rd_kafka_mock_cluster_new(rk, brokers)
    if not mc:
        lib.rd_kafka_destroy(rk)
        sys.stderr.write("mock_kafka: rd_kafka_mock_cluster_new failed\n")
        return 1

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        boot = lib.rd_kafka_mock_cluster_bootstraps(mc).decode()
        sys.stdout.write("BOOTSTRAP %s\n" % boot)
        sys.stdout.flush()
        while True:
            line = sys.stdin.readline()
            if not line:
                break  # EOF
            parts = line.split()
            if not parts:
                continue
            cmd, args = parts[0].lower(), parts[1:]
            try:
                if cmd == "create" and len(args) == 3:
                    parts_n, repl = int(args[1]), int(args[2])
                    # the mock itself accepts 0 partitions and repl > brokers
                    if parts_n < 1:
                        reply = "ERR partitions must be >= 1"
                    elif not 1 <= repl <= brokers:
                        reply = "ERR replication must be between 1 and %d" % brokers
                    else:
                        reply = err_reply(lib.rd_kafka_mock_topic_create(
                            mc, args[0].encode(), parts_n, repl))
                elif cmd == "down" and len(args) == 1:
                    reply = err_reply(lib.rd_kafka_mock_broker_set_down(mc, int(args[0])))
                elif cmd == "up" and len(args) == 1:
                    reply = err_reply(lib.rd_kafka_mock_broker_set_up(mc, int(args[0])))
                elif cmd == "leader" and len(args) == 3:
                    reply = err_reply(lib.rd_kafka_mock_partition_set_leader(
                        mc, args[0].encode(), int(args[1]), int(args[2])))
                elif cmd == "error" and len(args) == 3:
                    api_key, code, count = int(args[0]), int(args[1]), int(args[2])
                    if not 1 <= count <= 100:
                        reply = "ERR count must be between 1 and 100"
                    else:
                        lib.rd_kafka_mock_push_request_errors(
                            c_vp(mc), ctypes.c_int16(api_key), c_size_t(count),
                            *[c_int(code)] * count)
                        reply = "OK"
                elif cmd == "ping" and not args:
                    reply = "OK"
                elif cmd in ("quit", "exit") and not args:
                    sys.stdout.write("OK\n")
                    sys.stdout.flush()
                    break
                else:
                    reply = "ERR unknown command or wrong argument count: %s" % line.strip()
            except ValueError as e:
                reply = "ERR bad argument: %s" % e
            sys.stdout.write(reply + "\n")
            sys.stdout.flush()
    except (Stop, BrokenPipeError):
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        lib.rd_kafka_mock_cluster_destroy(mc)
        lib.rd_kafka_destroy(rk)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Every record and key that crosses the wire between the ServerApp and the ClientApps, named once and
imported by both sides. (The values are Flower record names; semfed itself never imports Flower.)"""

# records of a message's content
ARRAYS = "arrays"  # ArrayRecord: the global arrays out, the client's update back
CONFIG = "config"  # ConfigRecord: the server's instructions for the round
METRICS = "metrics"  # MetricRecord: the client's reply metrics (averaged by the strategy)
LABEL_STATS = "label-stats"  # ArrayRecord: the client's decoy-confidence histogram (label-handling federated)
LABEL_DIAGNOSTICS = "label-diagnostics"  # MetricRecord, simulation only: overlap with the injected noise

# keys of the server's train config
SERVER_ROUND = "server-round"
SKB_VERSION = "skb-version"  # the SKB both sides must hold
RUN_NAME = "run-name"  # the run directory relative to runs/ (where the clients keep their label ledgers)
LABEL_CONSENSUS = "label-consensus"  # the federation's null: its clients' decoy-confidence histograms pooled
MAX_EXAMPLES = "max-examples"  # the examples a user may train this round before the deadline (straggler-policy partial)
JSCC_ROLE = "jscc-role"  # a D-JSCC client's role this round (semfed.jscc.federation.ROLES)

# keys of a client's reply metrics
PARTITION_ID = "partition-id"  # the client's claim of its partition (also its node-config key and query reply,
# and, in a train config of a pooled run (supernode-pool), the user the server asks the node to play)
NUM_EXAMPLES = "num-examples"  # the client's claim of its examples (capped by the server)

# keys of a client's personalisation reply (an EVALUATE message after the last round, personal-finetune-epochs > 0)
RSUM_GLOBAL = "rsum-global"  # its own-test RSUM with the global adapter
RSUM_PERSONAL = "rsum-personal"  # with its personal fine-tuned copy

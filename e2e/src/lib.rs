//! End-to-end test support: the node agent that stands in for kubelet, and scenario helpers.

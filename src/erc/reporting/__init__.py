"""Table 1, the seed study, the paper's protocol and generated pages: reports that choose nothing."""

"""The text corpus the local traffic generator sends: short queries and long passages,
so that a model whose position embeddings were cut fails on the long ones for real."""

from __future__ import annotations

SHORT = [
    "How do I reset my password?",
    "Best hiking trails near the lake",
    "What is the refund policy for damaged items?",
    "Translate good morning into French",
    "Symptoms of a sprained ankle",
    "Cheap flights from Berlin to Lisbon in May",
    "How many grams of protein are in an egg?",
    "Kubernetes pod stuck in CrashLoopBackOff",
    "Recipe for vegan lasagne without tofu",
    "Is it going to rain tomorrow in Oslo?",
    "Compare the battery life of two phones",
    "Why does my sourdough not rise?",
]

LONG = [
    (
        "The quarterly report shows that revenue grew in every region except the north-east, where a supply "
        "shortage of components delayed shipments for six weeks; management expects the backlog to clear by "
        "the end of next quarter, and has signed contracts with two additional suppliers to reduce the risk "
        "of a repeat, while the board asked for a detailed review of inventory policy and of the forecasting "
        "models that failed to anticipate the shortage in the first place."
    ),
    (
        "To configure the service, copy the example file into the configuration directory, set the database "
        "URL and the credentials of the read-only user, choose the number of worker processes according to "
        "the number of cores, enable TLS with the certificate issued by your internal authority, and restart "
        "the daemon; the health endpoint reports ready once migrations have run and the cache has warmed, "
        "which usually takes under a minute on a machine with solid-state storage."
    ),
    (
        "Attention layers compute, for every token, a weighted mixture of the values of all other tokens, "
        "with weights given by a softmax over scaled dot products of queries and keys; the memory needed "
        "for the scores grows with the square of the sequence length, which is why long documents are "
        "usually split into overlapping windows, truncated, or processed by models with sparse or linear "
        "attention patterns that trade some accuracy for a much smaller footprint on the accelerator."
    ),
    (
        "After the storm the volunteers cleared the paths through the forest, rebuilt two footbridges that "
        "had been washed away by the river, replaced the trail markers that were missing, and wrote a short "
        "guide for visitors explaining which routes were open again, which would stay closed until the "
        "ground had dried out, and where to find drinking water, shelter and the nearest emergency phone "
        "along the northern loop that leads to the old observatory on the ridge."
    ),
]


def default_corpus() -> list[str]:
    """About a quarter of the requests are long passages (over 64 tokens)."""
    return SHORT + LONG

"""A stand-in for princeton-nlp/WebShop's `web_agent_site` (not installable offline): the same
`WebAgentTextEnv` interface over a three-product store, with pages in WebShop's "text" format
(` [SEP] `-separated parts). It lets the WebShop environment's own code run end to end here."""

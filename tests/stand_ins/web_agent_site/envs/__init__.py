import random

PRODUCTS = {
    "b000aaa001": ("Lemon scented soy candle, 8 oz jar", 12.99, ["8 oz", "16 oz"]),
    "b000aaa002": ("Vanilla soy candle, 16 oz jar", 19.99, ["16 oz"]),
    "b000aaa003": ("Unscented pillar candle set", 24.50, []),
}
GOALS = [("i need a lemon scented candle in an 8 oz jar", "b000aaa001", "8 oz"),
         ("i want a vanilla candle", "b000aaa002", "16 oz")] * 800  # enough for every split


class _Server:
    def __init__(self):
        self.goals = [{"instruction_text": text, "asin": asin, "option": option, "price_upper": random.uniform(20, 40)}
                      for text, asin, option in GOALS]  # fmt: skip


class WebAgentTextEnv:
    def __init__(self, observation_mode="html", num_products=None, human_goals=None, server=None, **kwargs):
        self.server = server or _Server()
        self.page, self.goal, self.asin, self.option = "search", None, None, None

    def get_instruction_text(self):
        return self.goal["instruction_text"] + f", and price lower than {self.goal['price_upper']:.2f} dollars"

    def _text(self):
        head = f"Instruction: [SEP] {self.get_instruction_text()}"
        if self.page == "search":
            return f"WebShop [SEP] {head} [SEP] Search"
        if self.page == "results":
            items = " [SEP] ".join(f"{a.upper()} [SEP] {t} [SEP] ${p}" for a, (t, p, _) in PRODUCTS.items())
            return f"{head} [SEP] Back to Search [SEP] Page 1 (Total results: 3) [SEP] Next > [SEP] {items}"
        title, price, options = PRODUCTS[self.asin]
        opts = " [SEP] ".join(["size", *options]) + " [SEP] " if options else ""
        return f"{head} [SEP] Back to Search [SEP] < Prev [SEP] {opts}{title} [SEP] Price: ${price} [SEP] Rating: N.A. [SEP] Buy Now"

    def get_available_actions(self):
        if self.page == "search":
            return {"has_search_bar": True, "clickables": ["search"]}
        if self.page == "results":
            return {"has_search_bar": False, "clickables": ["back to search", "next >", *PRODUCTS]}
        return {"has_search_bar": False, "clickables": ["back to search", "< prev", *PRODUCTS[self.asin][2], "buy now"]}

    def reset(self, session=None, instruction_text=None):
        self.goal, self.page, self.asin, self.option = self.server.goals[session], "search", None, None
        return self._text(), None

    def step(self, action):
        verb, argument = action.split("[", 1)
        argument = argument[:-1]
        if verb == "search":
            self.page = "results"
        elif argument == "back to search":
            self.page = "search"
        elif argument in PRODUCTS and self.page == "results":
            self.page, self.asin = "item", argument
        elif self.page == "item" and argument in PRODUCTS[self.asin][2]:
            self.option = argument
        elif argument == "buy now":
            reward = (self.asin == self.goal["asin"]) * (0.5 + 0.5 * (self.option == self.goal["option"]))
            return "Thank you for shopping with us! [SEP] Your score (min 0.0, max 1.0) [SEP] " + str(reward), reward, True, None
        return self._text(), 0.0, False, None

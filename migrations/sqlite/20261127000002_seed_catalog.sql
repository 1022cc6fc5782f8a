-- The catalog a fresh shop opens with.
INSERT INTO products (name, description, price_cents, stock, image) VALUES
    ('Enamel Camp Mug', 'A 350 ml steel mug with a speckled blue enamel coat. Survives campfires, dishwashers and Monday mornings.', 1450, 40, '/static/products/enamel-camp-mug.svg'),
    ('Linen Tea Towel', 'Stonewashed Lithuanian linen, 50 × 70 cm. Absorbent from the first wash and softer with every one after.', 1200, 60, '/static/products/linen-tea-towel.svg'),
    ('Cast Iron Skillet', 'A pre-seasoned 26 cm skillet that sears, bakes and lasts for generations.', 4900, 15, '/static/products/cast-iron-skillet.svg'),
    ('Beeswax Candle Pair', 'Two hand-dipped candles of pure beeswax, 20 cm tall, about eight hours each.', 1800, 35, '/static/products/beeswax-candle-pair.svg'),
    ('Walnut Cutting Board', 'End-grain black walnut, 35 × 25 cm, finished with food-safe oil. Kind to knife edges.', 6500, 12, '/static/products/walnut-cutting-board.svg'),
    ('Wool Throw Blanket', 'Merino wool in a herringbone weave, 130 × 170 cm. Warm without weight.', 8900, 10, '/static/products/wool-throw-blanket.svg'),
    ('Stoneware Bowl Set', 'Four glazed stoneware bowls, 15 cm across, oven and microwave safe.', 3600, 25, '/static/products/stoneware-bowl-set.svg'),
    ('French Press 1 L', 'A borosilicate glass press with a stainless steel frame and a fine double mesh filter.', 3200, 30, '/static/products/french-press.svg'),
    ('Canvas Tote Bag', 'Heavy 16 oz cotton canvas with leather handles. Carries a week of groceries.', 2400, 50, '/static/products/canvas-tote-bag.svg'),
    ('Ceramic Pour-Over', 'A hand-thrown dripper for size 02 filters, with a slow, even flow.', 2800, 20, '/static/products/ceramic-pour-over.svg'),
    ('Brass Bottle Opener', 'Solid brass, cast and polished by hand. Ages to a warm patina.', 1600, 45, '/static/products/brass-bottle-opener.svg'),
    ('Herb Garden Kit', 'Basil, parsley and chives with three terracotta pots, soil discs and a growing guide.', 2900, 18, '/static/products/herb-garden-kit.svg');

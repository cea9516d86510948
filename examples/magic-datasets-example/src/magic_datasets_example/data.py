"""The example's rows, kept in code so the package needs no data files or network."""

NOTES = [
    "bread needs flour water salt and yeast and a warm place to rise",
    "the dough for bread rises twice before it goes into a hot oven",
    "soup starts with onions cooked slowly in butter until soft",
    "a good soup simmers for an hour so the flavours can mix",
    "rice is rinsed in cold water before it is cooked",
    "cooked rice rests under a lid for ten minutes before serving",
    "eggs boiled for six minutes keep a soft yellow centre",
    "eggs beaten with milk make a light and soft omelette",
    "fresh pasta is made from flour and eggs and rolled thin",
    "pasta cooks in salted water that boils hard",
    "a salad of tomatoes and onions wants salt oil and a little vinegar",
    "green salad leaves are washed and dried before the oil goes on",
    "cakes rise in the oven because of eggs and baking powder",
    "a cake is done when a knife comes out of the centre clean",
    "fish cooks fast and is done when it turns white",
    "fish on a hot pan needs oil so it does not stick",
    "potatoes boiled in salted water are done when a knife slides in",
    "roast potatoes need a hot oven and plenty of oil",
    "beans soaked overnight in cold water cook faster",
    "beans and rice together make a cheap and filling meal",
    "butter and flour cooked together thicken a sauce",
    "a tomato sauce simmers slowly with onions and oil",
    "tea is made with water that has just boiled",
    "coffee tastes bitter when the water is too hot",
]

QUERIES = [
    "bread needs flour water salt and yeast",
    "eggs boiled for six minutes keep a soft yellow centre",
    "pasta cooks in salted water that boils hard",
    "fish cooks fast and is done when it turns white",
]

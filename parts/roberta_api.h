/* roberta (api): placeholder */

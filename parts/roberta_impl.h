/* roberta (impl): placeholder */

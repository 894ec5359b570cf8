/* bpe (api): placeholder */

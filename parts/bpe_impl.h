/* bpe (impl): placeholder */
